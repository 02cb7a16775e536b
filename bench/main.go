// Command bench drives the real stack on this machine — dev server, RabbitMQ, TCS simulator,
// workers, starter, as separate processes — to prove nothing is lost (chaos) and to measure speed
// (speed). Both write their section of BENCHMARKS.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "Usage: go run ./bench chaos|speed|bodies|protect|run-cluster [flags]   (--help for each)")
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
	case "run-cluster":
		os.Exit(runCluster(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q: chaos, speed, bodies, protect or run-cluster\n", os.Args[1])
		os.Exit(2)
	}
}
