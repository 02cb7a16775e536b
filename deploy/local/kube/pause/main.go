// Command pause is the local Kubernetes' sandbox (pause) image: it holds a pod's namespaces and waits for
// the signal that ends the pod. Built here because no registry is reachable.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
