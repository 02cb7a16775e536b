package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
)

// Probe is the end-to-end check's workflow (contract.ProbeWorkflowType): started like a record, taken
// by a worker of the current build, it runs the TCS probe once. Its failure is the activity's, which
// names what stopped it.
func Probe(ctx workflow.Context) (contract.ProbeResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var r contract.ProbeResult
	err := workflow.ExecuteActivity(ctx, contract.ProbeTCSName).Get(ctx, &r)
	return r, err
}
