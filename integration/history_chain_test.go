package integration_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// A long 401 spell makes the record's workflow continue as new; `starter history` still tells the
// whole story: the message and the first run's attempts, then the later run's, once each.
func TestHistoryFollowsContinueAsNew(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	tm := testenv.StartTemporalWithArgs(t, "--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=30")
	simr := testenv.StartSim(t, 1000)
	w := testenv.StartWorker(t, tm, simr.URL(), testenv.WorkerOptions{TCSTimeout: 500 * time.Millisecond,
		Retry: contract.RetrySettings{InitialInterval: 50 * time.Millisecond, BackoffCoefficient: 1.5,
			MaximumInterval: 200 * time.Millisecond, Budget: time.Hour, ParkingPeriod: time.Hour}})
	_ = w
	simr.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 401})
	m := placement(31, "CHAIN.DAT")
	run, err := tm.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: m.WorkflowID(), TaskQueue: contract.TaskQueue},
		contract.PlacementWorkflowType, m)
	require.NoError(t, err)
	first := run.GetRunID()
	require.Eventually(t, func() bool {
		d, err := tm.Client.DescribeWorkflowExecution(context.Background(), m.WorkflowID(), "")
		return err == nil && d.GetWorkflowExecutionInfo().GetExecution().GetRunId() != first
	}, time.Minute, 100*time.Millisecond, "the 401 spell continued as new")
	simr.Store.SetFaults(sim.Faults{})
	require.Equal(t, contract.StateCompleted, result(t, run, time.Minute).State)

	bin := testenv.Build(t, "./starter", t.TempDir())
	out := starterCLI(t, bin, []string{"TEMPORAL_ADDRESS=" + tm.Address}, true, "history", "--workflow-id", m.WorkflowID())
	require.Equal(t, 1, strings.Count(out, "  message "), "the message once, from the first run:\n%s", out)
	require.Contains(t, out, `"placementId":31`)
	require.Contains(t, out, "continued as new")
	require.Contains(t, out, "401", "the first run's attempts are there")
	require.Contains(t, out, "now: Completed")
	lines := strings.Split(out, "\n")
	require.Contains(t, lines[1], "message", "the story starts with the message:\n%s", out)
}
