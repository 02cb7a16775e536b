// Command etcd is etcd v3.5.36's server, built from its module (whose replace directives keep
// `go install` from building it).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
