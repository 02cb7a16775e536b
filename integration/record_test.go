package integration_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/tcssim/sim"
	"github.com/tis-writeback/writeback/workflows"
)

// TestRecordHistories records the histories that workflows/replay_test.go replays, with the real
// CLI's JSON output, into workflows/testdata/<release>/. A history once recorded is never
// recorded again (a released folder is frozen): record the new paths of a release with
//
//	WRITEBACK_RECORD_HISTORIES=v3 go test ./integration -run TestRecordHistories
func TestRecordHistories(t *testing.T) {
	release := os.Getenv("WRITEBACK_RECORD_HISTORIES")
	if release == "" {
		t.Skip("set WRITEBACK_RECORD_HISTORIES=<release folder> to record workflows/testdata/<release>")
	}
	s := newStack(t, testenv.WorkerOptions{})
	dir := filepath.Join(testenv.RepoRoot(t), "workflows", "testdata", release)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	save := func(name, id string) {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			t.Fatalf("%s exists: recorded histories are frozen, never recorded again", path)
		}
		out := s.tm.CLI(t, "workflow", "show", "--workflow-id", id, "--output", "json")
		require.NoError(t, os.WriteFile(path, []byte(out), 0o644))
	}
	recorders := map[string]func(){
		"v1": func() { recordV1(t, s, save) },
		"v2": func() { recordV2(t, s, save) },
		"v3": func() { recordV3(t, s, save) },
	}
	rec, ok := recorders[release]
	require.True(t, ok, "no recorder for release %q", release)
	rec()
}

// recordV1 is the first release's set (kept to show how it was made; its files are frozen).
func recordV1(t *testing.T, s *stack, save func(name, id string)) {
	ok := placement(701, "DE_SEV_APP_20210728_00003779.DAT")
	result(t, s.start(t, contract.PlacementWorkflowType, ok.WorkflowID(), ok), 30*time.Second)
	save("placement_completed.json", ok.WorkflowID())

	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 503, Only: "/api/placements/702"})
	flaky := placement(702, "FLAKY.DAT")
	run := s.start(t, contract.PlacementWorkflowType, flaky.WorkflowID(), flaky)
	time.Sleep(4 * time.Second)
	s.sim.Store.SetFaults(sim.Faults{})
	result(t, run, 30*time.Second)
	save("placement_transient_then_completed.json", flaky.WorkflowID())

	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 422, Only: "/esr-exported"})
	dl := placement(703, "REJECTED.DAT")
	run = s.start(t, contract.PlacementWorkflowType, dl.WorkflowID(), dl)
	s.waitState(t, dl.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", dl.WorkflowID(), "--name", contract.SignalRetry, "--input", `{"reason":"too early","by":"recorder"}`)
	s.waitState(t, dl.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	s.sim.Store.SetFaults(sim.Faults{})
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", dl.WorkflowID(), "--name", contract.SignalRetry, "--input", `{"reason":"TCS fixed","by":"recorder"}`)
	result(t, run, 30*time.Second)
	save("placement_deadletter_retry_completed.json", dl.WorkflowID())

	sc := contract.ScanCompleted{ScanID: "f1c2a9e0-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "BLOCKED", FileName: "x.pdf",
		CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
	run = s.start(t, contract.ScanWorkflowType, sc.WorkflowID(), sc)
	s.waitState(t, sc.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", sc.WorkflowID(), "--name", contract.SignalAbandon)
	result(t, run, 30*time.Second)
	save("scan_deadletter_abandoned.json", sc.WorkflowID())

	good := contract.ScanCompleted{ScanID: "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "CLEAN", FileName: "y.pdf",
		CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
	result(t, s.start(t, contract.ScanWorkflowType, good.WorkflowID(), good), 30*time.Second)
	save("scan_completed.json", good.WorkflowID())
}

// recordV2: failure groups, a poison message's dead letter, edit and retry.
func recordV2(t *testing.T, s *stack, save func(name, id string)) {
	// A 404 dead letter with its group, retried with a corrected record after TCS learnt it.
	dl := placement(50001, "UNKNOWN.DAT")
	run := s.start(t, contract.PlacementWorkflowType, dl.WorkflowID(), dl)
	s.waitState(t, dl.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	s.sim.Store.MakeKnown([]int64{50001}, nil, false)
	fixed := dl
	fixed.PositionID = 99
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", dl.WorkflowID(), "--name", contract.SignalRetry,
		"--input", `{"reason":"positionId fixed","by":"recorder","record":`+string(mustJSON(t, fixed))+`}`)
	result(t, run, 30*time.Second)
	save("placement_404_group_corrected_completed.json", dl.WorkflowID())

	// A poison message that names its record: dead letter without a write, a retry without a
	// correction dead-letters it again, then the correction completes it.
	partial := placement(704, "POISON.DAT")
	partial.ExportedAt = time.Time{}
	run = s.start(t, contract.PlacementWorkflowType, partial.WorkflowID(), partial,
		&workflows.Carry{Poison: `field "exportedAt" must be an RFC 3339 time, got "yesterday"`, PoisonGroup: "poison-exportedAt"})
	s.waitState(t, partial.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", partial.WorkflowID(), "--name", contract.SignalRetry, "--input", `{"reason":"again","by":"recorder"}`)
	require.Eventually(t, func() bool { return s.query(t, partial.WorkflowID()).Retries == 1 }, 30*time.Second, 100*time.Millisecond)
	s.waitState(t, partial.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	good := placement(704, "POISON.DAT")
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", partial.WorkflowID(), "--name", contract.SignalRetry,
		"--input", `{"reason":"producer fixed","by":"recorder","record":`+string(mustJSON(t, good))+`}`)
	result(t, run, 30*time.Second)
	save("placement_poison_deadletter_corrected_completed.json", partial.WorkflowID())
}

// recordV3: recovery runs behind fresh records (a retried dead letter, a record started as
// recovery by redrive or reconcile: priority 4, no local fast path).
func recordV3(t *testing.T, s *stack, save func(name, id string)) {
	dl := placement(50003, "RECOVER.DAT")
	run := s.start(t, contract.PlacementWorkflowType, dl.WorkflowID(), dl)
	s.waitState(t, dl.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	s.sim.Store.MakeKnown([]int64{50003}, nil, false)
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", dl.WorkflowID(), "--name", contract.SignalRetry,
		"--input", `{"reason":"placement created in TCS","by":"recorder","job":"retry-job-recorder"}`)
	result(t, run, 30*time.Second)
	save("placement_404_retry_as_recovery_completed.json", dl.WorkflowID())

	redriven := placement(705, "REDRIVEN.DAT")
	run, err := s.tm.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: redriven.WorkflowID(),
		TaskQueue: contract.TaskQueue, Priority: temporal.Priority{PriorityKey: contract.RecoveryPriority}},
		contract.PlacementWorkflowType, redriven)
	require.NoError(t, err)
	result(t, run, 30*time.Second)
	save("placement_started_as_recovery_completed.json", redriven.WorkflowID())
}
