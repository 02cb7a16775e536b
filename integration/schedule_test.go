package integration_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
)

// The first worker that starts creates the daily ledger's Schedule; the next leaves it as it is (an
// operator's pause or edit stands); LEDGER_SCHEDULE=off creates none.
func TestWorkersCreateTheLedgerScheduleOnce(t *testing.T) {
	t.Parallel()
	s, workerBin := processStack(t)
	startWorkerProcess(t, workerBin, s, "--ledger-schedule", "off")
	_, err := s.tm.Client.ScheduleClient().GetHandle(t.Context(), contract.LedgerScheduleID).Describe(t.Context())
	require.Error(t, err, "off: no schedule")

	w := startWorkerProcess(t, workerBin, s, "--ledger-schedule", "15 3 * * *", "--ledger-report-only")
	require.Len(t, w.logs.Lines("created the daily ledger's schedule"), 1)
	h := s.tm.Client.ScheduleClient().GetHandle(t.Context(), contract.LedgerScheduleID)
	d, err := h.Describe(t.Context())
	require.NoError(t, err)
	action, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok)
	require.Equal(t, contract.LedgerWorkflowType, action.Workflow)
	require.Equal(t, contract.TaskQueue, action.TaskQueue)
	require.NotEmpty(t, d.Info.NextActionTimes)
	next := d.Info.NextActionTimes[0].UTC()
	require.Equal(t, 3, next.Hour())
	require.Equal(t, 15, next.Minute())

	// An operator pauses it; another worker starting leaves it paused.
	require.NoError(t, h.Pause(t.Context(), client.SchedulePauseOptions{Note: "TCS migration"}))
	w2 := startWorkerProcess(t, workerBin, s)
	require.Empty(t, w2.logs.Lines("created the daily ledger's schedule"))
	require.Empty(t, w2.logs.Lines("the daily ledger has no schedule"))
	d, err = h.Describe(t.Context())
	require.NoError(t, err)
	require.True(t, d.Schedule.State.Paused)

	// Triggered now, it runs a ledger of the day before, report-only as it was created.
	require.NoError(t, h.Trigger(t.Context(), client.ScheduleTriggerOptions{}))
	var rep contract.LedgerReport
	require.Eventually(t, func() bool {
		d, err := h.Describe(t.Context())
		if err != nil || len(d.Info.RecentActions) == 0 {
			return false
		}
		run := d.Info.RecentActions[0].StartWorkflowResult
		return s.tm.Client.GetWorkflow(t.Context(), run.WorkflowID, run.FirstExecutionRunID).Get(t.Context(), &rep) == nil
	}, 60*time.Second, 500*time.Millisecond)
	require.Equal(t, time.Now().UTC().AddDate(0, 0, -1).Format(contract.LedgerDayLayout), rep.Day)
	require.True(t, rep.ReportOnly)
	require.Equal(t, contract.LedgerDone, rep.State)
}
