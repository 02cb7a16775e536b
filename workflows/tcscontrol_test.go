package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/workflows"
)

// The workers present share the TCS cap: one that reports is listed at once, one that leaves is
// gone at once, and one that stops reporting (killed) is gone after PresenceTTL — seconds, not
// minutes — with one timer at a time however many reports arrive.
func TestControlListsTheWorkersPresent(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.TCSControl, workflow.RegisterOptions{Name: workflows.TCSControlWorkflowType})
	report := func(at time.Duration, r workflows.WorkerModeReport) {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalTCSWorkerMode, r) }, at)
	}
	workersAt := map[time.Duration][]string{}
	look := func(at time.Duration) {
		env.RegisterDelayedCallback(func() {
			v, err := env.QueryWorkflow(workflows.QueryTCS)
			require.NoError(t, err)
			var st workflows.TCSStatus
			require.NoError(t, v.Get(&st))
			workersAt[at] = st.Workers
		}, at)
	}
	// a and b report every PresenceEvery; b leaves at 30 s; a is killed after its report at 40 s.
	for at := time.Second; at <= 40*time.Second; at += workflows.PresenceEvery {
		report(at, workflows.WorkerModeReport{Worker: "a", Mode: "normal", TCSRate: 50})
		if at < 30*time.Second {
			report(at+time.Millisecond, workflows.WorkerModeReport{Worker: "b", Mode: "normal", TCSRate: 50})
		}
	}
	report(30*time.Second, workflows.WorkerModeReport{Worker: "b", Leaving: true})
	for _, at := range []time.Duration{2 * time.Second, 29 * time.Second, 31 * time.Second, 50 * time.Second, 58 * time.Second} {
		look(at)
	}
	env.RegisterDelayedCallback(env.CancelWorkflow, 2*time.Minute)
	env.ExecuteWorkflow(workflows.TCSControlWorkflowType, nil)

	require.Equal(t, []string{"a", "b"}, workersAt[2*time.Second], "both listed at once")
	require.Equal(t, []string{"a", "b"}, workersAt[29*time.Second])
	require.Equal(t, []string{"a"}, workersAt[31*time.Second], "b left: gone at once")
	require.Equal(t, []string{"a"}, workersAt[50*time.Second], "a's last report was at 36 s: still within PresenceTTL")
	require.Empty(t, workersAt[58*time.Second], "a stopped reporting at 36 s: gone by 36 s + PresenceTTL")
}
