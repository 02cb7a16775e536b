package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/workflows"
)

// TestReplayRecordedHistories replays histories recorded from a real dev server (see
// integration/record_test.go), one folder per release: testdata/v1.0 is release 1.0's, frozen like
// every folder once released. A change to workflow code that would break running workflows (parked
// ones live 30 days, a job or the TCS control for as long as they run) fails here; guard such a
// change with workflow.GetVersion, and say beside it when it may go: once no history from before it
// can still be running (the parking period, 30 days, plus a margin).
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*", "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 10)
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.RecordPlacementExport, workflow.RegisterOptions{Name: contract.PlacementWorkflowType})
			r.RegisterWorkflowWithOptions(workflows.RecordScanResult, workflow.RegisterOptions{Name: contract.ScanWorkflowType})
			r.RegisterWorkflowWithOptions(workflows.RetryJob, workflow.RegisterOptions{Name: contract.RetryJobWorkflowType})
			r.RegisterWorkflowWithOptions(workflows.TCSControl, workflow.RegisterOptions{Name: contract.TCSControlWorkflowType})
			r.RegisterWorkflowWithOptions(workflows.Reconcile, workflow.RegisterOptions{Name: contract.ReconcileWorkflowType})
			r.RegisterWorkflowWithOptions(workflows.Ledger, workflow.RegisterOptions{Name: contract.LedgerWorkflowType})
			r.RegisterWorkflowWithOptions(workflows.Rollout, workflow.RegisterOptions{Name: contract.RolloutWorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
