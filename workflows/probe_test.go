package workflows_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/workflows"
)

// The probe returns what its activity found, and fails with the activity's words, tried once.
func TestProbe(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Probe)
	env.RegisterActivityWithOptions(func(ctx context.Context) (contract.ProbeResult, error) {
		return contract.ProbeResult{Worker: "w1", Answer: "TCS answered 404"}, nil
	}, activity.RegisterOptions{Name: contract.ProbeTCSName})
	env.ExecuteWorkflow(workflows.Probe)
	require.NoError(t, env.GetWorkflowError())
	var r contract.ProbeResult
	require.NoError(t, env.GetWorkflowResult(&r))
	require.Equal(t, contract.ProbeResult{Worker: "w1", Answer: "TCS answered 404"}, r)

	env = ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Probe)
	calls := 0
	env.RegisterActivityWithOptions(func(ctx context.Context) (contract.ProbeResult, error) {
		calls++
		return contract.ProbeResult{}, temporal.NewApplicationError("TCS does not answer the worker: connection refused", "tcs-unreachable")
	}, activity.RegisterOptions{Name: contract.ProbeTCSName})
	env.ExecuteWorkflow(workflows.Probe)
	err := env.GetWorkflowError()
	require.ErrorContains(t, err, "TCS does not answer the worker")
	require.Equal(t, 1, calls, "tried once: the check reports, it does not wait out an outage")
}
