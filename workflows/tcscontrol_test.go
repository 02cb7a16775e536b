package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/workflows"
)

// The workers present share the TCS cap: one that reports is listed at once, one that leaves is
// gone at once, and one that stops reporting (killed) is gone after PresenceTTL — seconds, not
// minutes — with one timer at a time however many reports arrive.
func TestControlListsTheWorkersPresent(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.TCSControl, workflow.RegisterOptions{Name: contract.TCSControlWorkflowType})
	report := func(at time.Duration, r contract.WorkerModeReport) {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalTCSWorkerMode, r) }, at)
	}
	workersAt := map[time.Duration][]string{}
	look := func(at time.Duration) {
		env.RegisterDelayedCallback(func() {
			v, err := env.QueryWorkflow(contract.QueryTCS)
			require.NoError(t, err)
			var st contract.TCSStatus
			require.NoError(t, v.Get(&st))
			workersAt[at] = st.Workers
		}, at)
	}
	// a and b report every PresenceEvery; b leaves at 30 s; a is killed after its report at 40 s.
	for at := time.Second; at <= 40*time.Second; at += contract.PresenceEvery {
		report(at, contract.WorkerModeReport{Worker: "a", Mode: "normal", TCSRate: 50})
		if at < 30*time.Second {
			report(at+time.Millisecond, contract.WorkerModeReport{Worker: "b", Mode: "normal", TCSRate: 50})
		}
	}
	report(30*time.Second, contract.WorkerModeReport{Worker: "b", Leaving: true})
	for _, at := range []time.Duration{2 * time.Second, 29 * time.Second, 31 * time.Second, 45 * time.Second, 58 * time.Second} {
		look(at)
	}
	env.RegisterDelayedCallback(env.CancelWorkflow, 2*time.Minute)
	env.ExecuteWorkflow(contract.TCSControlWorkflowType, nil)

	require.Equal(t, []string{"a", "b"}, workersAt[2*time.Second], "both listed at once")
	require.Equal(t, []string{"a", "b"}, workersAt[29*time.Second])
	require.Equal(t, []string{"a"}, workersAt[31*time.Second], "b left: gone at once")
	require.Equal(t, []string{"a"}, workersAt[45*time.Second], "a's last report was at 37 s: still within PresenceTTL")
	require.Empty(t, workersAt[58*time.Second], "a stopped reporting at 37 s: gone by 37 s + PresenceTTL")
}

// A malformed command (`--input '{"op": 7}'`) is logged and ignored, and wedges nothing: a worker's
// report after it is acted on (before, the control blocked in the command's receive until the next
// decodable command), and so is the next command.
func TestControlIgnoresAMalformedCommand(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.TCSControl, workflow.RegisterOptions{Name: contract.TCSControlWorkflowType})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalTCSCommand, map[string]any{"op": 7})
		env.SignalWorkflow(contract.SignalTCSWorkerMode, "not a report")
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalTCSWorkerMode, contract.WorkerModeReport{Worker: "a", Mode: "normal"})
	}, 2*time.Second)
	query := func() contract.TCSStatus {
		v, err := env.QueryWorkflow(contract.QueryTCS)
		require.NoError(t, err)
		var st contract.TCSStatus
		require.NoError(t, v.Get(&st))
		return st
	}
	var before, after contract.TCSStatus
	env.RegisterDelayedCallback(func() { before = query() }, 5*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalTCSCommand, contract.TCSCommand{Op: contract.TCSHold, Reason: "TCS upgrade", By: "ops"})
	}, 6*time.Second)
	env.RegisterDelayedCallback(func() { after = query() }, 7*time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
	env.ExecuteWorkflow(contract.TCSControlWorkflowType, nil)
	require.Equal(t, []string{"a"}, before.Workers, "the report after the malformed command was acted on")
	require.True(t, after.Held, "the hold after the malformed command took effect")
}
