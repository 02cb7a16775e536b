// Package integration drives the real worker code against a real Temporal dev server (from the
// pinned CLI in bin/) and the TCS simulator over HTTP.
package integration_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

type stack struct {
	tm     *testenv.Temporal
	sim    *sim.Server
	worker *testenv.Worker
}

func newStack(t *testing.T, o testenv.WorkerOptions) *stack {
	if testing.Short() {
		t.Skip("integration test: needs the dev server")
	}
	tm := testenv.StartTemporal(t)
	s := testenv.StartSim(t, 1000)
	w := testenv.StartWorker(t, tm, s.URL(), o)
	return &stack{tm: tm, sim: s, worker: w}
}

func placement(id int64, file string) contract.PlacementExported {
	return contract.PlacementExported{PlacementID: id, PositionNumber: 25713154, PositionID: 6957985, Filename: file,
		ExportedAt: time.Date(2021, 7, 28, 13, 10, 0, 0, time.UTC)}
}

func (s *stack) start(t *testing.T, wfType, id string, input any, more ...any) client.WorkflowRun {
	run, err := s.tm.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: id, TaskQueue: contract.TaskQueue}, wfType, append([]any{input}, more...)...)
	require.NoError(t, err)
	return run
}

// query asks a workflow its state, retrying a transient RPC error for up to 15 s.
func (s *stack) query(t *testing.T, id string) contract.Status {
	t.Helper()
	var st contract.Status
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; {
		var v converter.EncodedValue
		if v, err = s.tm.Client.QueryWorkflow(context.Background(), id, "", contract.QueryState); err == nil {
			require.NoError(t, v.Get(&st))
			return st
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	require.NoError(t, err, "query %s", id)
	return st
}

func (s *stack) waitState(t *testing.T, id, state string, within time.Duration) contract.Status {
	var st contract.Status
	require.Eventually(t, func() bool {
		v, err := s.tm.Client.QueryWorkflow(context.Background(), id, "", contract.QueryState)
		if err != nil {
			return false
		}
		_ = v.Get(&st)
		return st.State == state
	}, within, 100*time.Millisecond, "workflow %s never reached %s (last %+v)", id, state, st)
	return st
}

// waitStateOr is waitState that adds more to its failure message.
func (s *stack) waitStateOr(t *testing.T, id, state string, within time.Duration, more func() string) contract.Status {
	var st contract.Status
	ok := assert.Eventually(t, func() bool {
		v, err := s.tm.Client.QueryWorkflow(context.Background(), id, "", contract.QueryState)
		if err != nil {
			return false
		}
		_ = v.Get(&st)
		return st.State == state
	}, within, 100*time.Millisecond)
	if !ok {
		t.Fatalf("workflow %s never reached %s (last %+v)\n%s", id, state, st, more())
	}
	return st
}

func result(t *testing.T, run client.WorkflowRun, within time.Duration) contract.Status {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var st contract.Status
	require.NoError(t, run.Get(ctx, &st))
	return st
}

func TestPlacementCompletes(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	m := placement(101, "A.DAT")
	st := result(t, s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m), 30*time.Second)
	require.Equal(t, contract.StateCompleted, st.State)
	require.Equal(t, 1, st.Attempts)
	require.Equal(t, 1, s.sim.Store.ExportedCount(101, "A.DAT"))
}

func TestCLIStartedWorkflowCompletes(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	input := `{"placementId":102,"positionNumber":25713154,"positionId":6957985,"filename":"B.DAT","exportedAt":"2021-07-28T13:10:00Z"}`
	s.tm.CLI(t, "workflow", "start", "--type", contract.PlacementWorkflowType, "--task-queue", contract.TaskQueue,
		"--workflow-id", "placement-esr/102/B.DAT", "--input", input)
	s.tm.CLI(t, "workflow", "result", "--workflow-id", "placement-esr/102/B.DAT")
	require.Equal(t, 1, s.sim.Store.ExportedCount(102, "B.DAT"))
	list := s.tm.CLI(t, "workflow", "list", "--query", `WritebackState="Completed" AND WritebackKind="placement" AND WritebackRecordId="102"`)
	require.Contains(t, list, "placement-esr/102/B.DAT")
}

func TestPermanentErrorDeadLettersMarksFailedAndRetries(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	m := placement(103, "C.DAT")
	// TCS rejects the export itself (422); the esr-export-failed mark still works.
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 422, Only: "/esr-exported"})
	run := s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	st := s.waitState(t, m.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	require.Equal(t, 1, st.Attempts)
	require.Contains(t, st.LastError, "422")
	require.NotEmpty(t, st.DeadLetteredAt)
	require.Equal(t, 1, s.sim.Store.FailedCount(103, "C.DAT"), "TCS shows FAILED")
	require.Equal(t, 0, s.sim.Store.ExportedCount(103, "C.DAT"))

	crit := s.worker.Logs.Lines(`"level":"CRITICAL"`, m.WorkflowID())
	require.Len(t, crit, 1, "one CRITICAL line per dead-lettering")
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(crit[0]), &line))
	require.Equal(t, "placement", line["kind"])
	require.Equal(t, "103", line["recordId"])
	require.Equal(t, run.GetRunID(), line["runId"])

	// The operator finds it by search attribute, with the real CLI.
	require.Eventually(t, func() bool {
		return strings.Contains(s.tm.CLI(t, "workflow", "list", "--query", `WritebackState="DeadLettered"`), m.WorkflowID())
	}, 10*time.Second, 200*time.Millisecond)

	// TCS fixed; retry by signal with the real CLI.
	s.sim.Store.SetFaults(sim.Faults{})
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", m.WorkflowID(), "--name", contract.SignalRetry,
		"--input", `{"reason":"TCS fixed","by":"integration-test"}`)
	st = result(t, run, 30*time.Second)
	require.Equal(t, contract.StateCompleted, st.State)
	require.Equal(t, 1, st.Retries)
	require.Equal(t, 2, st.Attempts)
	require.Equal(t, 1, s.sim.Store.ExportedCount(103, "C.DAT"))
	require.Len(t, s.worker.Logs.Lines(`"level":"CRITICAL"`, m.WorkflowID()), 1)

	metrics := scrape(t, s.worker.Metrics)
	require.Contains(t, metrics, `writeback_dead_letters_total{activity_type="none",client_name="temporal_go",kind="placement",namespace="default",task_queue="writeback",worker_type="none",workflow_type="RecordPlacementExport"} 1`)
	require.Contains(t, metrics, `writeback_manual_retries_total{activity_type="none",client_name="temporal_go",kind="placement",namespace="default",task_queue="writeback",worker_type="none",workflow_type="RecordPlacementExport"} 1`)
	require.Equal(t, 2, strings.Count(metrics, "\nwriteback_dead_letters_total{"), "the series counted from workflow code is the one that existed at 0 from start-up")
}

func TestTCSOutageOfTenSecondsThenCompletedOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	s.sim.Store.SetFaults(sim.Faults{Outage: true})
	var runs []client.WorkflowRun
	for i := int64(0); i < 20; i++ {
		m := placement(200+i, "OUTAGE.DAT")
		runs = append(runs, s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m))
	}
	time.Sleep(10 * time.Second)
	st := s.query(t, placement(200, "OUTAGE.DAT").WorkflowID())
	require.Equal(t, contract.StateUpdating, st.State, "an outage never dead-letters")
	s.sim.Store.SetFaults(sim.Faults{})
	recovered := time.Now()
	for _, run := range runs {
		st := result(t, run, 60*time.Second)
		require.Equal(t, contract.StateCompleted, st.State)
		// It failed before it was written (requests the worker held back in outage mode are not
		// attempts: a record may have sent TCS just the one that worked).
		require.GreaterOrEqual(t, st.Attempts, 1)
		require.NotEmpty(t, st.LastError)
	}
	t.Logf("MEASURED: 20 placements after a 10 s TCS outage: all Completed %.1f s after TCS came back (default backoff 1 s ×2)",
		time.Since(recovered).Seconds())
	for i := int64(0); i < 20; i++ {
		require.Equal(t, 1, s.sim.Store.ExportedCount(200+i, "OUTAGE.DAT"))
	}
	require.Equal(t, 0, s.sim.Store.Stats().Duplicates)
	require.Empty(t, s.worker.Logs.Lines(`"level":"CRITICAL"`))
}

func TestLostAnswersNeverDuplicate(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{TCSTimeout: 300 * time.Millisecond,
		Retry: contract.RetrySettings{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: time.Second, Budget: time.Hour, ParkingPeriod: time.Hour}})
	s.sim.Store.SetFaults(sim.Faults{TimeoutRate: 0.5, ErrorRate: 0.2})
	var runs []client.WorkflowRun
	for i := int64(0); i < 30; i++ {
		m := placement(300+i, "LOST.DAT")
		runs = append(runs, s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m))
	}
	for _, run := range runs {
		require.Equal(t, contract.StateCompleted, result(t, run, 2*time.Minute).State)
	}
	for i := int64(0); i < 30; i++ {
		require.Equal(t, 1, s.sim.Store.ExportedCount(300+i, "LOST.DAT"), "placement %d", 300+i)
	}
	require.Equal(t, 0, s.sim.Store.Stats().Duplicates)
}

func TestScanCompletesAndScanDeadLetters(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	ok := contract.ScanCompleted{ScanID: "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "SANITISED", FileName: "referral.pdf",
		CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
	unknown := ok
	unknown.ScanID = "f1c2a9e0-0b7d-4c55-9a1e-6d2f0e8b4c11"
	st := result(t, s.start(t, contract.ScanWorkflowType, ok.WorkflowID(), ok), 30*time.Second)
	require.Equal(t, contract.StateCompleted, st.State)
	sc, _ := s.sim.Store.ScanRecord(ok.ScanID)
	require.Equal(t, "COMPLETED", sc.Status)

	run := s.start(t, contract.ScanWorkflowType, unknown.WorkflowID(), unknown)
	s.waitState(t, unknown.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	require.Len(t, s.worker.Logs.Lines(`"level":"CRITICAL"`, unknown.WorkflowID()), 1)
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", unknown.WorkflowID(), "--name", contract.SignalAbandon)
	require.Equal(t, contract.StateAbandoned, result(t, run, 30*time.Second).State)
}

func TestAuthFailureKeepsUpdatingAndAlerts(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{Retry: contract.RetrySettings{InitialInterval: 100 * time.Millisecond,
		BackoffCoefficient: 2, MaximumInterval: 500 * time.Millisecond, Budget: 2 * time.Second, ParkingPeriod: time.Hour}})
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 401})
	m := placement(400, "AUTH.DAT")
	run := s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	time.Sleep(5 * time.Second) // more than twice the 2 s budget
	st := s.query(t, m.WorkflowID())
	require.Equal(t, contract.StateUpdating, st.State, "401 never spends the budget")
	require.Contains(t, st.LastError, "401")
	require.Regexp(t, `writeback_tcs_requests_total\{class="config",endpoint="get_placement",status="401"\} [1-9]`, scrape(t, s.worker.Metrics))
	s.sim.Store.SetFaults(sim.Faults{})
	require.Equal(t, contract.StateCompleted, result(t, run, 30*time.Second).State)
	require.Equal(t, 1, s.sim.Store.ExportedCount(400, "AUTH.DAT"))
}

func scrape(t *testing.T, url string) string {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return "\n" + string(b)
}
