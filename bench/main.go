// Command bench is the harness's command: it runs the real stack on this machine — Temporal,
// RabbitMQ, TCS simulator, workers, starters, as separate processes (package stack) — for a demo
// (run, run-cluster: make run and make run-cluster), to prove nothing is lost (chaos) and to
// measure speed (speed, bodies, protect). The last four write their sections of BENCHMARKS.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "Usage: bin/harness run|run-cluster|chaos|speed|bodies|protect|ledger [flags]   (--help for each)")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "chaos":
		os.Exit(runChaos(os.Args[2:]))
	case "speed":
		os.Exit(runSpeed(os.Args[2:]))
	case "bodies":
		os.Exit(runBodies(os.Args[2:]))
	case "protect":
		os.Exit(runProtect(os.Args[2:]))
	case "ledger":
		os.Exit(runLedger(os.Args[2:]))
	case "run":
		os.Exit(runDemo(os.Args[2:]))
	case "run-cluster":
		os.Exit(runDemo(append([]string{"--profile", "cluster"}, os.Args[2:]...)))
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q: run, run-cluster, chaos, speed, bodies, protect or ledger\n", os.Args[1])
		os.Exit(2)
	}
}
