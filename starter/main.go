// Command starter moves records from RabbitMQ into writeback workflows, and is the operator's CLI
// (docs/contract.md, CLI commands): consume, publish, retry, abandon, deadletters, history, jobs,
// tcs, versioning, redrive, reconcile, ledger, check.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/tis-writeback/writeback/internal/buildinfo"
)

func commands() []command {
	return []command{
		{"consume", "consume the record queues and start one workflow per message", runConsume},
		{"publish", "publish messages (a file of JSON lines, or a demo batch) with publisher confirms", runPublish},
		{"retry", "signal retry to dead-lettered workflows (one, a query, a group, or all); optionally with a corrected record", runRetry},
		{"abandon", "signal abandon to dead-lettered workflows (one, a query, a group, or all)", runAbandon},
		{"deadletters", "the dead letters grouped by kind and failure group, with the command that retries each group", runDeadLetters},
		{"history", "a record's timeline: message, attempts, dead-letterings, operator actions, state now", runHistory},
		{"jobs", "the retry jobs: list, show JOB-ID [--json], cancel JOB-ID, resume JOB-ID", runJobs},
		{"tcs", "the TCS mode for every worker: status, hold, release, rate", runTCS},
		{"versioning", "Worker Versioning: status, set-current (the build that gets the records; the chart's hook runs it)", runVersioning},
		{"redrive", "move the DLQ's messages back to the exchange under their original routing key", runRedrive},
		{"reconcile", "start workflows for exported placements whose EXPORTED event TCS lacks", runReconcile},
		{"ledger", "the daily ledger: show DAY (records by outcome, and drift: rows TCS no longer holds), run DAY (check it again now)", runLedger},
		{"check", "whether a record can go end to end here: Temporal, RabbitMQ, a worker and TCS, each in turn (helm test)", runCheck},
	}
}

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
	cmds := commands()
	usage := func() {
		fmt.Fprintf(os.Stderr, "Usage: %s <command> [flags]\n\nCommands:\n", prog)
		for _, c := range cmds {
			fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
		}
		fmt.Fprintf(os.Stderr, "\nRun `%s <command> --help` for a command's flags.\n", prog)
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		usage()
		return
	}
	for _, c := range cmds {
		if c.name == name {
			os.Exit(c.run(os.Args[2:]))
		}
	}
	fmt.Fprintf(os.Stderr, "unknown command %q\n\n", name)
	usage()
	os.Exit(2)
}
