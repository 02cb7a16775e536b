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

// rolloutFake is a deployment whose routing the rollout changes, and the health of each build's
// records as the judge would count them.
type rolloutFake struct {
	env     *testsuite.TestWorkflowEnvironment
	routing contract.Routing
	routes  []string
	health  func(build string, since, until time.Time) contract.BuildHealth
}

func newRolloutEnv(t *testing.T, f *rolloutFake) *testsuite.TestWorkflowEnvironment {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	f.env = env
	env.RegisterWorkflowWithOptions(workflows.Rollout, workflow.RegisterOptions{Name: contract.RolloutWorkflowType})
	env.RegisterActivityWithOptions(func(ctx context.Context, deployment string) (contract.Routing, error) {
		return f.routing, nil
	}, activity.RegisterOptions{Name: contract.RolloutDescribeActivity})
	env.RegisterActivityWithOptions(func(ctx context.Context, req contract.RouteRequest) error {
		require.Equal(t, "writeback", req.Deployment)
		require.Contains(t, req.Identity, "writeback rollout")
		switch {
		case req.Current:
			f.routes = append(f.routes, "current "+req.BuildID)
			f.routing.Current, f.routing.Ramping, f.routing.RampingPercentage = req.BuildID, "", 0
		case req.BuildID == "":
			f.routes = append(f.routes, "unset ramp")
			f.routing.Ramping, f.routing.RampingPercentage = "", 0
		default:
			f.routes = append(f.routes, fmt.Sprintf("ramp %s %.0f%%", req.BuildID, req.Percentage))
			f.routing.Ramping, f.routing.RampingPercentage = req.BuildID, req.Percentage
		}
		return nil
	}, activity.RegisterOptions{Name: contract.RolloutRouteActivity})
	env.RegisterActivityWithOptions(func(ctx context.Context, req contract.JudgeRequest) (contract.BuildHealth, error) {
		h := f.health(req.BuildID, req.Since, req.Until)
		h.BuildID = req.BuildID
		return h, nil
	}, activity.RegisterOptions{Name: contract.RolloutJudgeActivity})
	return env
}

func rolloutInput() contract.RolloutInput {
	return contract.RolloutInput{Deployment: "writeback", BuildID: "b2", StepDuration: 2 * time.Minute, By: "ops", Reason: "release 1.1"}
}

func rolloutResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) contract.RolloutReport {
	t.Helper()
	require.NoError(t, env.GetWorkflowError())
	var rep contract.RolloutReport
	require.NoError(t, env.GetWorkflowResult(&rep))
	return rep
}

// A healthy build goes 10 %, 50 %, then current, each step run for its time and judged.
func TestRolloutPromotesAHealthyBuildStepByStep(t *testing.T) {
	f := &rolloutFake{routing: contract.Routing{Current: "b1", Polling: []string{"b1", "b2"}}}
	f.health = func(build string, _, _ time.Time) contract.BuildHealth {
		if build == "b2" { // its share of the records
			p := f.routing.RampingPercentage
			return contract.BuildHealth{Records: int(300 * p / (100 - p)), DeadLettered: 1}
		}
		return contract.BuildHealth{Records: 300, DeadLettered: 3, Unfinished: 2}
	}
	env := newRolloutEnv(t, f)
	env.ExecuteWorkflow(contract.RolloutWorkflowType, rolloutInput())
	rep := rolloutResult(t, env)
	require.Equal(t, []string{"ramp b2 10%", "ramp b2 50%", "current b2"}, f.routes)
	require.Equal(t, contract.RolloutPromoted, rep.State)
	require.Equal(t, "b1", rep.Previous)
	require.Len(t, rep.Steps, 2)
	for _, s := range rep.Steps {
		require.GreaterOrEqual(t, s.JudgedAt.Sub(s.StartedAt), 2*time.Minute, "a step runs its time")
		require.Contains(t, s.Verdict, "healthy")
	}
	require.Equal(t, float32(100), rep.Percentage)
}

// A build whose records dead-letter is rolled back at the first look with enough records, mid-step:
// the ramp is removed, the reason kept.
func TestRolloutRollsBackABuildThatDeadLetters(t *testing.T) {
	f := &rolloutFake{routing: contract.Routing{Current: "b1", Polling: []string{"b1", "b2"}},
		health: func(build string, _, _ time.Time) contract.BuildHealth {
			if build == "b2" {
				return contract.BuildHealth{Records: 25, DeadLettered: 25, Failures: map[string]int{"tcs-422": 24, "tcs-404": 1}}
			}
			return contract.BuildHealth{Records: 200, Failures: map[string]int{}}
		}}
	env := newRolloutEnv(t, f)
	env.ExecuteWorkflow(contract.RolloutWorkflowType, rolloutInput())
	rep := rolloutResult(t, env)
	require.Equal(t, []string{"ramp b2 10%", "unset ramp"}, f.routes)
	require.Equal(t, contract.RolloutRolledBack, rep.State)
	require.Contains(t, rep.Reason, "dead-letter more than the current build's")
	require.Contains(t, rep.Reason, "25 records, 100% dead-lettered (tcs-404 1, tcs-422 24)", "the TCS answers behind them, in order")
	require.Len(t, rep.Steps, 1)
	require.Less(t, rep.Steps[0].JudgedAt.Sub(rep.Steps[0].StartedAt), 2*time.Minute, "stopped before its step's end")
	require.Equal(t, float32(0), rep.Percentage)
}

// A build that cannot reach TCS finishes none of its records: rolled back too.
func TestRolloutRollsBackABuildWhoseRecordsDoNotFinish(t *testing.T) {
	f := &rolloutFake{routing: contract.Routing{Current: "b1", Polling: []string{"b1", "b2"}},
		health: func(build string, _, _ time.Time) contract.BuildHealth {
			if build == "b2" {
				return contract.BuildHealth{Records: 30, Unfinished: 30}
			}
			return contract.BuildHealth{Records: 200, Unfinished: 1}
		}}
	env := newRolloutEnv(t, f)
	env.ExecuteWorkflow(contract.RolloutWorkflowType, rolloutInput())
	rep := rolloutResult(t, env)
	require.Equal(t, contract.RolloutRolledBack, rep.State)
	require.Contains(t, rep.Reason, "do not finish")
}

// A quiet step (too few records to judge) is extended, up to three times; still too quiet, the ramp
// is removed: a build is never promoted blind.
func TestRolloutNeverPromotesBlind(t *testing.T) {
	f := &rolloutFake{routing: contract.Routing{Current: "b1", Polling: []string{"b2"}},
		health: func(build string, _, _ time.Time) contract.BuildHealth {
			if build == "b2" {
				return contract.BuildHealth{Records: 2}
			}
			return contract.BuildHealth{Records: 10}
		}}
	env := newRolloutEnv(t, f)
	in := rolloutInput()
	in.Steps = []float32{25}
	env.ExecuteWorkflow(contract.RolloutWorkflowType, in)
	rep := rolloutResult(t, env)
	require.Equal(t, contract.RolloutInconclusive, rep.State)
	require.Equal(t, []string{"ramp b2 25%", "unset ramp"}, f.routes)
	require.Contains(t, rep.Reason, "too few of its records to judge")
	require.GreaterOrEqual(t, rep.Steps[0].JudgedAt.Sub(rep.Steps[0].StartedAt), 8*time.Minute, "the step ran four times its length")
}

// No worker of the build polls: nothing is routed to it, and the rollout says why it ended.
func TestRolloutWithNoWorkersRoutesNothing(t *testing.T) {
	f := &rolloutFake{routing: contract.Routing{Current: "b1", Polling: []string{"b1"}},
		health: func(string, time.Time, time.Time) contract.BuildHealth { return contract.BuildHealth{} }}
	env := newRolloutEnv(t, f)
	in := rolloutInput()
	in.WaitForWorkers = time.Minute
	env.ExecuteWorkflow(contract.RolloutWorkflowType, in)
	rep := rolloutResult(t, env)
	require.Empty(t, f.routes)
	require.Equal(t, contract.RolloutNotStarted, rep.State)
	require.Contains(t, rep.Reason, "no worker of build b2 polled within 1m0s")
}

// An operator cancels the rollout mid-ramp: the ramp is removed.
func TestRolloutCancelledRemovesItsRamp(t *testing.T) {
	f := &rolloutFake{routing: contract.Routing{Current: "b1", Polling: []string{"b1", "b2"}},
		health: func(string, time.Time, time.Time) contract.BuildHealth { return contract.BuildHealth{Records: 100} }}
	env := newRolloutEnv(t, f)
	env.RegisterDelayedCallback(env.CancelWorkflow, 3*time.Minute)
	env.ExecuteWorkflow(contract.RolloutWorkflowType, rolloutInput())
	require.Error(t, env.GetWorkflowError())
	require.Equal(t, []string{"ramp b2 10%", "ramp b2 50%", "unset ramp"}, f.routes)
}

// Records routed to a build that never finishes a workflow task show under no build: far fewer
// records than its share is a rollback too, and so are a few bad records only at the step's end
// (not mid-step: noise in a handful of records must not roll back a good build).
func TestRolloutJudgesTheShareAndIsNotMovedByNoise(t *testing.T) {
	f := &rolloutFake{routing: contract.Routing{Current: "b1", Polling: []string{"b1", "b2"}},
		health: func(build string, _, _ time.Time) contract.BuildHealth {
			if build == "b2" {
				return contract.BuildHealth{Records: 30}
			}
			return contract.BuildHealth{Records: 900}
		}}
	env := newRolloutEnv(t, f)
	in := rolloutInput()
	in.Steps = []float32{50}
	env.ExecuteWorkflow(contract.RolloutWorkflowType, in)
	rep := rolloutResult(t, env)
	require.Equal(t, contract.RolloutRolledBack, rep.State)
	require.Contains(t, rep.Reason, "its workers ran 30 records where about 900 were routed to it")

	looks := 0
	f = &rolloutFake{routing: contract.Routing{Current: "b1", Polling: []string{"b1", "b2"}},
		health: func(build string, _, _ time.Time) contract.BuildHealth {
			if build == "b2" {
				looks++
				return contract.BuildHealth{Records: 20, DeadLettered: 2} // 10 % against 2 %: 2 records beyond
			}
			return contract.BuildHealth{Records: 180, DeadLettered: 4}
		}}
	env = newRolloutEnv(t, f)
	env.ExecuteWorkflow(contract.RolloutWorkflowType, in)
	rep = rolloutResult(t, env)
	require.Equal(t, contract.RolloutRolledBack, rep.State, "worse at the step's end")
	require.GreaterOrEqual(t, rep.Steps[0].JudgedAt.Sub(rep.Steps[0].StartedAt), 2*time.Minute, "not rolled back mid-step on 2 records")
}

// With no versioned current build there is nothing to compare with; with another build ramping, a
// second ramp would take its place: nothing is routed either way.
func TestRolloutRefusesWhatItCannotJudge(t *testing.T) {
	for _, rt := range []contract.Routing{{Polling: []string{"b2"}}, {Current: "b1", Ramping: "b3", RampingPercentage: 10, Polling: []string{"b2"}}} {
		f := &rolloutFake{routing: rt, health: func(string, time.Time, time.Time) contract.BuildHealth { return contract.BuildHealth{} }}
		env := newRolloutEnv(t, f)
		env.ExecuteWorkflow(contract.RolloutWorkflowType, rolloutInput())
		rep := rolloutResult(t, env)
		require.Equal(t, contract.RolloutNotStarted, rep.State, "%+v", rt)
		require.Empty(t, f.routes)
	}
}

func TestRolloutRefusesBadSteps(t *testing.T) {
	for _, steps := range [][]float32{{50, 10}, {10, 100}, {0}} {
		in := rolloutInput()
		in.Steps = steps
		require.Error(t, in.Validate(), "%v", steps)
	}
	require.NoError(t, rolloutInput().WithDefaults().Validate())
}
