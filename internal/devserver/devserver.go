// Package devserver holds the Temporal CLI dev server's arguments that every harness here uses
// (make run, the integration tests, the benchmarks).
package devserver

import (
	"strconv"

	"github.com/tis-writeback/writeback/contract"
)

// Flags are the writeback search attributes and the dynamic config the service relies on.
func Flags() []string {
	args := []string{
		// Task-queue priority (fresh records ahead of recovery traffic): the dev server 1.29 ships
		// the priority matcher switched off; Temporal 1.31 and later have it on by default.
		"--dynamic-config-value", "matching.useNewMatcher=true",
	}
	for _, sa := range contract.SearchAttributeNames {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	return args
}

// ProcessArgs are the arguments of a dev server run as a process of its own that keeps its state in
// dbFile across restarts (SQLite in WAL mode: ~30-40 workflows/s on 2 cores); uiPort 0 runs it
// without its web UI.
func ProcessArgs(port, uiPort int, dbFile string) []string {
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(port),
		"--db-filename", dbFile, "--log-level", "error",
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"}
	if uiPort == 0 {
		args = append(args, "--headless")
	} else {
		args = append(args, "--ui-port", strconv.Itoa(uiPort))
	}
	return append(args, Flags()...)
}
