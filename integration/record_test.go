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
	"github.com/tis-writeback/writeback/internal/operate"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// TestRecordHistories records the histories that workflows/replay_test.go replays, with the real
// CLI's JSON output, into workflows/testdata/<release>/. A history once recorded is never recorded
// again (a released folder is frozen): a release that changes workflow code adds its own folder,
// with its own recorder here, and guards each change with workflow.GetVersion.
//
//	cd integration && WRITEBACK_RECORD_HISTORIES=v1.0 go test -run TestRecordHistories
func TestRecordHistories(t *testing.T) {
	release := os.Getenv("WRITEBACK_RECORD_HISTORIES")
	if release == "" {
		t.Skip("set WRITEBACK_RECORD_HISTORIES=<release folder> to record workflows/testdata/<release>")
	}
	opts := testenv.WorkerOptions{}
	if release == "v1.1" {
		// A short budget, so that a record spends it while recording.
		opts.Retry = contract.RetrySettings{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: time.Second, Budget: 4 * time.Second, ParkingPeriod: time.Hour}
	}
	s := newStack(t, opts)
	dir := filepath.Join(testenv.RepoRoot(t), "workflows", "testdata", release)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	save := func(name, id string) {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			t.Logf("%s exists: kept (recorded histories are frozen, never recorded again)", path)
			return
		}
		out := s.tm.CLI(t, "workflow", "show", "--workflow-id", id, "--output", "json")
		require.NoError(t, os.WriteFile(path, []byte(out), 0o644))
	}
	recorders := map[string]func(){
		"v1.0": func() { recordV1(t, s, save) },
		"v1.1": func() { recordV1_1(t, s, save) },
	}
	rec, ok := recorders[release]
	require.True(t, ok, "no recorder for release %q", release)
	rec()
}

// recordV1 is release 1.0's set: every path of the record workflows, a retry job, the TCS control.
func recordV1(t *testing.T, s *stack, save func(name, id string)) {
	ctx := context.Background()
	sig := func(id, name, input string) {
		s.tm.CLI(t, "workflow", "signal", "--workflow-id", id, "--name", name, "--input", input)
	}

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

	// 422: dead letter; a malformed signal ignored; a retry too early dead-letters it again; the
	// same request again ignored; a retry by Update once TCS takes it completes it.
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 422, Only: "/esr-exported"})
	dl := placement(703, "REJECTED.DAT")
	run = s.start(t, contract.PlacementWorkflowType, dl.WorkflowID(), dl)
	s.waitState(t, dl.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	sig(dl.WorkflowID(), contract.SignalRetry, `{"reason": 42}`)
	sig(dl.WorkflowID(), contract.SignalRetry, `{"reason":"too early","by":"recorder","requestId":"r-1"}`)
	require.Eventually(t, func() bool { return s.query(t, dl.WorkflowID()).Retries == 1 }, 30*time.Second, 100*time.Millisecond)
	s.waitState(t, dl.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	sig(dl.WorkflowID(), contract.SignalRetry, `{"reason":"too early","by":"recorder","requestId":"r-1"}`)
	s.sim.Store.SetFaults(sim.Faults{})
	a, err := operate.Ask(ctx, s.tm.Client, dl.WorkflowID(), "", contract.UpdateRetry, "r-2",
		contract.SignalPayload{Reason: "TCS fixed", By: "recorder", RequestID: "r-2"})
	require.NoError(t, err)
	require.True(t, a.Accepted, a.Why)
	result(t, run, 30*time.Second)
	save("placement_422_retries_signal_and_update_completed.json", dl.WorkflowID())

	// 404 with its group, retried with a corrected record after TCS learnt it.
	unknown := placement(50001, "UNKNOWN.DAT")
	run = s.start(t, contract.PlacementWorkflowType, unknown.WorkflowID(), unknown)
	s.waitState(t, unknown.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	s.sim.Store.MakeKnown([]int64{50001}, nil, false)
	fixed := unknown
	fixed.PositionID = 99
	sig(unknown.WorkflowID(), contract.SignalRetry, `{"reason":"positionId fixed","by":"recorder","record":`+string(mustJSON(t, fixed))+`}`)
	result(t, run, 30*time.Second)
	save("placement_404_corrected_completed.json", unknown.WorkflowID())

	// A poison message that names its record: a dead letter without a write, then corrected.
	partial := placement(704, "POISON.DAT")
	partial.ExportedAt = time.Time{}
	run = s.start(t, contract.PlacementWorkflowType, partial.WorkflowID(), partial,
		&contract.Carry{Poison: `field "exportedAt" must be an RFC 3339 time, got "yesterday"`, PoisonGroup: "poison-exportedAt"})
	s.waitState(t, partial.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	sig(partial.WorkflowID(), contract.SignalRetry, `{"reason":"producer fixed","by":"recorder","record":`+string(mustJSON(t, placement(704, "POISON.DAT")))+`}`)
	result(t, run, 30*time.Second)
	save("placement_poison_corrected_completed.json", partial.WorkflowID())

	// Started as recovery (redrive, reconcile): priority 4, no local fast path.
	redriven := placement(705, "REDRIVEN.DAT")
	run, err = s.tm.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: redriven.WorkflowID(),
		TaskQueue: contract.TaskQueue, Priority: temporal.Priority{PriorityKey: contract.RecoveryPriority}},
		contract.PlacementWorkflowType, redriven)
	require.NoError(t, err)
	result(t, run, 30*time.Second)
	save("placement_started_as_recovery_completed.json", redriven.WorkflowID())

	sc := contract.ScanCompleted{ScanID: "f1c2a9e0-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "BLOCKED", FileName: "x.pdf",
		CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
	run = s.start(t, contract.ScanWorkflowType, sc.WorkflowID(), sc)
	s.waitState(t, sc.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	sig(sc.WorkflowID(), contract.SignalAbandon, `{"reason":"scan deleted","by":"recorder"}`)
	result(t, run, 30*time.Second)
	save("scan_deadletter_abandoned.json", sc.WorkflowID())

	good := contract.ScanCompleted{ScanID: "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "CLEAN", FileName: "y.pdf",
		CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
	result(t, s.start(t, contract.ScanWorkflowType, good.WorkflowID(), good), 30*time.Second)
	save("scan_completed.json", good.WorkflowID())

	// A retry job: a skipped target, a canary, the rest, outcomes watched.
	var ids []string
	for i := int64(0); i < 4; i++ {
		ids = append(ids, s.deadLetter(t, 50010+i, "JOB.DAT"))
	}
	s.sim.Store.MakeKnown([]int64{50010, 50011, 50012, 50013}, nil, false)
	job := contract.JobInput{ID: "retry-job-recorder", Signal: contract.SignalRetry, IDs: ids, Rate: 10, Canary: 1,
		MaxFailureRatio: 0.5, MaxRetries: 5, Reason: "placements created in TCS", By: "recorder", SkippedAtStart: 1,
		SkippedExamples: []contract.JobFailure{{WorkflowID: ok.WorkflowID(), What: "skipped", Reason: "closed"}}}
	jrun, err := s.tm.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: job.ID, TaskQueue: contract.TaskQueue},
		contract.RetryJobWorkflowType, job)
	require.NoError(t, err)
	var st contract.JobStatus
	require.NoError(t, jrun.Get(ctx, &st))
	require.Equal(t, contract.JobDone, st.State)
	require.Equal(t, 4, st.Completed)
	save("retry_job_done.json", job.ID)

	// The TCS control: workers' presence, a hold and its release, a rate and its reset.
	starter := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}
	starterCLI(t, starter, env, true, "tcs", "hold", "--reason", "TCS maintenance", "--by", "recorder")
	starterCLI(t, starter, env, true, "tcs", "release")
	starterCLI(t, starter, env, true, "tcs", "rate", "50")
	starterCLI(t, starter, env, true, "tcs", "rate", "--reset")
	time.Sleep(5 * time.Second) // a worker's presence report or two
	save("tcs_control_running.json", contract.TCSControlWorkflowID)
}

// recordV1_1 is release 1.1's set: the record workflow owns its retries (GetVersion own-retries), so
// every path with an attempt after the fast path: transient failures then a write, a wait for
// credentials, and a spent budget (looked at, dead-lettered, retried).
func recordV1_1(t *testing.T, s *stack, save func(name, id string)) {
	flaky := placement(711, "FLAKY.DAT")
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 503, Only: "/api/placements/711"})
	run := s.start(t, contract.PlacementWorkflowType, flaky.WorkflowID(), flaky)
	time.Sleep(1500 * time.Millisecond)
	s.sim.Store.SetFaults(sim.Faults{})
	result(t, run, 30*time.Second)
	save("placement_transient_then_completed.json", flaky.WorkflowID())

	creds := placement(712, "CREDENTIALS.DAT")
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 401, Only: "/api/placements/712"})
	run = s.start(t, contract.PlacementWorkflowType, creds.WorkflowID(), creds)
	time.Sleep(1500 * time.Millisecond)
	s.sim.Store.SetFaults(sim.Faults{})
	result(t, run, 30*time.Second)
	save("placement_401_then_completed.json", creds.WorkflowID())

	// Its writes fail, the look before dead-lettering and the mark go through.
	spent := placement(713, "SPENT.DAT")
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 503, Only: "/api/placements/713/esr-exported"})
	run = s.start(t, contract.PlacementWorkflowType, spent.WorkflowID(), spent)
	s.waitState(t, spent.WorkflowID(), contract.StateDeadLettered, 60*time.Second)
	s.sim.Store.SetFaults(sim.Faults{})
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", spent.WorkflowID(), "--name", contract.SignalRetry,
		"--input", `{"reason":"TCS fixed","by":"recorder","requestId":"r-11"}`)
	result(t, run, 30*time.Second)
	save("placement_budget_spent_retried_completed.json", spent.WorkflowID())

	// A reconcile job: one placement TCS holds, one it lacks (started again).
	missing := placement(714, "RECONCILED.DAT")
	job := "writeback-reconcile-recorded"
	run, err := s.tm.Client.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: job, TaskQueue: contract.TaskQueue},
		contract.ReconcileWorkflowType, contract.ReconcileInput{Placements: []contract.PlacementExported{flaky, missing},
			By: "recorder", Reason: "recorded history", Source: "recorder.jsonl", Concurrency: 2})
	require.NoError(t, err)
	var rep contract.ReconcileReport
	require.NoError(t, run.Get(t.Context(), &rep))
	require.Equal(t, 1, rep.Present)
	require.Len(t, rep.Outcomes, 1)
	require.Equal(t, missing.WorkflowID(), rep.Outcomes[0].WorkflowID)
	require.Equal(t, contract.ReconcileStarted, rep.Outcomes[0].Outcome)
	save("reconcile_job_done.json", job)
	s.waitState(t, missing.WorkflowID(), contract.StateCompleted, 30*time.Second)

	// The daily ledger of today, report-only.
	ledger := "writeback-ledger-recorded"
	run, err = s.tm.Client.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: ledger, TaskQueue: contract.TaskQueue},
		contract.LedgerWorkflowType, contract.LedgerInput{Day: time.Now().UTC().Format(contract.LedgerDayLayout), ReportOnly: true,
			By: "recorder"})
	require.NoError(t, err)
	var ledgerReport contract.LedgerReport
	require.NoError(t, run.Get(t.Context(), &ledgerReport))
	save("ledger_report_only_done.json", ledger)

	// A rollout with nothing to compare with (unversioned workers): nothing routed.
	rollout := "writeback-rollout-recorded"
	run, err = s.tm.Client.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: rollout, TaskQueue: contract.TaskQueue},
		contract.RolloutWorkflowType, contract.RolloutInput{Deployment: "writeback", BuildID: "recorded", By: "recorder"})
	require.NoError(t, err)
	var rolloutReport contract.RolloutReport
	require.NoError(t, run.Get(t.Context(), &rolloutReport))
	require.Equal(t, contract.RolloutNotStarted, rolloutReport.State)
	save("rollout_not_started.json", rollout)
}
