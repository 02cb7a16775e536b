// Command starter moves records from RabbitMQ into writeback workflows, and is the operator's CLI
// (docs/contract.md, CLI commands): consume, publish, retry, abandon, deadletters, history, jobs,
// tcs, versioning, redrive, reconcile, ledger, check. Each command is a thin adapter: it reads its
// command line and prints; the work is in starter/ops, starter/intake and internal/operate.
package main

import (
	"os"
	"strings"

	"github.com/tis-writeback/writeback/internal/buildinfo"
)

// prog is how the operator ran this program, for the usage lines and the commands it prints, so they
// can be pasted back: "go run ./starter" under go run (whose binary lives in the build cache), else
// the path as typed (bin/starter, /starter in the image).
var prog = progName(os.Args[0])

func progName(arg0 string) string {
	if strings.Contains(arg0, "go-build") {
		return "go run ./starter"
	}
	return arg0
}

func main() {
	buildinfo.HandleVersionFlag("writeback-starter")
	os.Exit(execute(os.Args[1:]))
}
