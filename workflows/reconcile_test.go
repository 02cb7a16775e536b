package workflows_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/workflows"
)

// A reconcile job checks its placements batch by batch; those the TCS guard did not send (a hold)
// get no outcome, are asked for again after a wait, and are never counted twice or lost.
func TestReconcileAsksAgainForWhatTheGuardDidNotSend(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Reconcile, workflow.RegisterOptions{Name: contract.ReconcileWorkflowType})
	var batches []int
	var asked []time.Time
	held := true
	env.RegisterActivityWithOptions(func(ctx context.Context, req contract.ReconcileCheckRequest) (contract.ReconcileCheckResult, error) {
		batches = append(batches, len(req.Placements))
		asked = append(asked, env.Now())
		require.Empty(t, req.Input.Placements, "the job's placements are not sent again with each batch")
		require.Equal(t, "ops", req.Input.By)
		res := contract.ReconcileCheckResult{}
		for i, m := range req.Placements {
			if held && i >= 30 { // the hold began after 30 reads
				res.NotSent = "TCS requests are on hold by an operator: not sent"
				continue
			}
			outcome := contract.ReconcilePresent
			if m.PlacementID%2 == 1 {
				outcome = contract.ReconcileStarted
			}
			res.Outcomes = append(res.Outcomes, contract.ReconcileOutcome{WorkflowID: m.WorkflowID(), Outcome: outcome})
		}
		held = false
		return res, nil
	}, activity.RegisterOptions{Name: contract.ReconcileCheckActivity})

	var placements []contract.PlacementExported
	for i := range 250 {
		placements = append(placements, contract.PlacementExported{PlacementID: int64(i + 1), Filename: "F.DAT"})
	}
	placements = append(placements, placements[3]) // the same record twice: checked once
	env.ExecuteWorkflow(contract.ReconcileWorkflowType, contract.ReconcileInput{Placements: placements, By: "ops", Reason: "why"})
	require.NoError(t, env.GetWorkflowError())
	var rep contract.ReconcileReport
	require.NoError(t, env.GetWorkflowResult(&rep))
	require.Equal(t, []int{100, 100, 100, 20}, batches, "the 70 not sent come first in the next batch: 250 + 70 asked for")
	require.GreaterOrEqual(t, asked[1].Sub(asked[0]), contract.ReconcileHeldWait, "waits before asking again")
	require.Equal(t, contract.ReconcileJobDone, rep.State)
	require.Equal(t, 250, rep.Total)
	require.Equal(t, 1, rep.Held)
	require.Equal(t, 1, rep.Duplicates)
	require.Equal(t, 125, rep.Present, "counted, not listed")
	require.Equal(t, 250, rep.Checked())
	seen := map[string]bool{}
	for _, o := range rep.Outcomes {
		require.False(t, seen[o.WorkflowID], "counted twice: %s", o.WorkflowID)
		require.Equal(t, contract.ReconcileStarted, o.Outcome)
		seen[o.WorkflowID] = true
	}
	require.Len(t, seen, 125)
	require.True(t, seen[fmt.Sprintf("placement-esr/%d/F.DAT", 31)], "one of the reads not sent at first")
}

// While the guard keeps refusing, the job waits longer each time (10 s, 20 s, …); a worker's word that
// TCS takes requests again (the signal its guard sends the callers it refused) ends the wait at once.
func TestReconcileWaitsLongerUntilTCSIsBack(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Reconcile, workflow.RegisterOptions{Name: contract.ReconcileWorkflowType})
	var start time.Time
	var asked []time.Duration
	released := false
	env.RegisterActivityWithOptions(func(ctx context.Context, req contract.ReconcileCheckRequest) (contract.ReconcileCheckResult, error) {
		if start.IsZero() {
			start = env.Now()
		}
		asked = append(asked, env.Now().Sub(start).Round(time.Second))
		if !released {
			return contract.ReconcileCheckResult{NotSent: "TCS requests are on hold by an operator: not sent"}, nil
		}
		return contract.ReconcileCheckResult{Outcomes: []contract.ReconcileOutcome{{WorkflowID: req.Placements[0].WorkflowID(),
			Outcome: contract.ReconcileUnknown}}}, nil
	}, activity.RegisterOptions{Name: contract.ReconcileCheckActivity})
	env.RegisterDelayedCallback(func() {
		released = true
		env.SignalWorkflow(contract.SignalTCSAvailable, nil)
	}, 45*time.Second)
	env.ExecuteWorkflow(contract.ReconcileWorkflowType, contract.ReconcileInput{
		Placements: []contract.PlacementExported{{PlacementID: 1, Filename: "F.DAT"}}, By: "ops"})
	require.NoError(t, env.GetWorkflowError())
	var rep contract.ReconcileReport
	require.NoError(t, env.GetWorkflowResult(&rep))
	require.Equal(t, []time.Duration{0, 10 * time.Second, 30 * time.Second, 45 * time.Second}, asked,
		"10 s, then 20 s, then woken at 45 s rather than at 70 s")
	require.Equal(t, 3, rep.Held)
	require.Equal(t, []contract.ReconcileOutcome{{WorkflowID: "placement-esr/1/F.DAT", Outcome: contract.ReconcileUnknown}}, rep.Outcomes)
}
