package integration_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/messages"
	"github.com/tis-writeback/writeback/tcssim/sim"
	"github.com/tis-writeback/writeback/workflows"
)

// TestRecordHistories records the histories that workflows/replay_test.go replays, with the real
// CLI's JSON output. Run it after a deliberate workflow change:
//
//	WRITEBACK_RECORD_HISTORIES=1 go test ./integration -run TestRecordHistories
func TestRecordHistories(t *testing.T) {
	if os.Getenv("WRITEBACK_RECORD_HISTORIES") == "" {
		t.Skip("set WRITEBACK_RECORD_HISTORIES=1 to re-record workflows/testdata")
	}
	s := newStack(t, testenv.WorkerOptions{})
	dir := filepath.Join(testenv.RepoRoot(t), "workflows", "testdata")
	save := func(name, id string) {
		out := s.tm.CLI(t, "workflow", "show", "--workflow-id", id, "--output", "json")
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(out), 0o644))
	}

	ok := placement(701, "DE_SEV_APP_20210728_00003779.DAT")
	result(t, s.start(t, workflows.PlacementWorkflowType, ok.WorkflowID(), ok), 30*time.Second)
	save("placement_completed.json", ok.WorkflowID())

	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 503, Only: "/api/placements/702"})
	flaky := placement(702, "FLAKY.DAT")
	run := s.start(t, workflows.PlacementWorkflowType, flaky.WorkflowID(), flaky)
	time.Sleep(4 * time.Second)
	s.sim.Store.SetFaults(sim.Faults{})
	result(t, run, 30*time.Second)
	save("placement_transient_then_completed.json", flaky.WorkflowID())

	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 422, Only: "/esr-exported"})
	dl := placement(703, "REJECTED.DAT")
	run = s.start(t, workflows.PlacementWorkflowType, dl.WorkflowID(), dl)
	s.waitState(t, dl.WorkflowID(), workflows.StateDeadLettered, 30*time.Second)
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", dl.WorkflowID(), "--name", workflows.SignalRetry, "--input", `{"reason":"too early","by":"recorder"}`)
	s.waitState(t, dl.WorkflowID(), workflows.StateDeadLettered, 30*time.Second)
	s.sim.Store.SetFaults(sim.Faults{})
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", dl.WorkflowID(), "--name", workflows.SignalRetry, "--input", `{"reason":"TCS fixed","by":"recorder"}`)
	result(t, run, 30*time.Second)
	save("placement_deadletter_retry_completed.json", dl.WorkflowID())

	sc := messages.ScanCompleted{ScanID: "f1c2a9e0-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "BLOCKED", FileName: "x.pdf",
		CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
	run = s.start(t, workflows.ScanWorkflowType, sc.WorkflowID(), sc)
	s.waitState(t, sc.WorkflowID(), workflows.StateDeadLettered, 30*time.Second)
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", sc.WorkflowID(), "--name", workflows.SignalAbandon)
	result(t, run, 30*time.Second)
	save("scan_deadletter_abandoned.json", sc.WorkflowID())

	good := messages.ScanCompleted{ScanID: "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "CLEAN", FileName: "y.pdf",
		CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
	result(t, s.start(t, workflows.ScanWorkflowType, good.WorkflowID(), good), 30*time.Second)
	save("scan_completed.json", good.WorkflowID())
}
