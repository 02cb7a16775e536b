package workflows_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/workflows"
)

// fakeJobs answers a job's activities: records in dead re-dead-letter, the rest complete.
type fakeJobs struct {
	dead     map[string]bool
	signals  []string
	skipped  map[string]string
	outcomes int
}

func (f *fakeJobs) SignalBatch(_ context.Context, req workflows.BatchRequest) (workflows.BatchResult, error) {
	res := workflows.BatchResult{Before: map[string]string{}, Skipped: map[string]string{}}
	for _, id := range req.IDs {
		if why, ok := f.skipped[id]; ok {
			res.Skipped[id] = why
			continue
		}
		f.signals = append(f.signals, id)
		res.Signalled = append(res.Signalled, id)
	}
	return res, nil
}

func (f *fakeJobs) AwaitOutcomes(_ context.Context, req workflows.AwaitRequest) ([]workflows.JobOutcome, error) {
	var out []workflows.JobOutcome
	for _, id := range req.IDs {
		f.outcomes++
		if f.dead[id] {
			out = append(out, workflows.JobOutcome{WorkflowID: id, Result: workflows.JobOutcomeDeadLettered, Reason: "TCS 404"})
		} else {
			out = append(out, workflows.JobOutcome{WorkflowID: id, Result: workflows.JobOutcomeCompleted})
		}
	}
	return out, nil
}

func jobEnv(t *testing.T, f *fakeJobs) *testsuite.TestWorkflowEnvironment {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	workflows.RegisterJobs(env, f)
	env.OnUpsertMemo(mock.Anything).Return(nil)
	return env
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("placement-esr/%d/A.DAT", i+1)
	}
	return out
}

func jobResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.JobStatus {
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var st workflows.JobStatus
	require.NoError(t, env.GetWorkflowResult(&st))
	return st
}

func TestJobRetriesACanaryThenTheRest(t *testing.T) {
	f := &fakeJobs{skipped: map[string]string{"placement-esr/7/A.DAT": "already retried 5 times"}}
	env := jobEnv(t, f)
	env.ExecuteWorkflow(workflows.RetryJobWorkflowType, workflows.JobInput{ID: "job-1", Signal: contract.SignalRetry,
		IDs: ids(120), Rate: 10, Canary: 1, MaxFailureRatio: 0.5, MaxRetries: 5, By: "ops"})
	st := jobResult(t, env)
	require.Equal(t, workflows.JobDone, st.State)
	require.Equal(t, 120, st.Total)
	require.Equal(t, 119, st.Signalled)
	require.Equal(t, 119, st.Completed)
	require.Equal(t, 1, st.Skipped)
	require.Equal(t, 0, st.Pending)
	require.Equal(t, "placement-esr/1/A.DAT", f.signals[0], "the canary goes first")
}

func TestJobHaltsWhenTheCanaryDeadLettersAgainAndResumes(t *testing.T) {
	f := &fakeJobs{dead: map[string]bool{"placement-esr/1/A.DAT": true}}
	env := jobEnv(t, f)
	var halted workflows.JobStatus
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.QueryJob)
		require.NoError(t, err)
		require.NoError(t, v.Get(&halted))
		env.SignalWorkflow(workflows.SignalJobResume, nil)
	}, time.Hour)
	env.ExecuteWorkflow(workflows.RetryJobWorkflowType, workflows.JobInput{ID: "job-2", Signal: contract.SignalRetry,
		IDs: ids(30), Rate: 10, Canary: 1, MaxFailureRatio: 0.5})
	require.Equal(t, workflows.JobHalted, halted.State)
	require.Contains(t, halted.HaltReason, "canary failed")
	require.Equal(t, 1, halted.Signalled, "nothing beyond the canary while halted")
	st := jobResult(t, env)
	require.Equal(t, workflows.JobDone, st.State)
	require.Equal(t, 30, st.Signalled)
	require.Equal(t, 1, st.DeadLettered)
}

func TestJobHaltsOnTheFailureRatioAndCancels(t *testing.T) {
	dead := map[string]bool{}
	for _, id := range ids(200) {
		dead[id] = true
	}
	f := &fakeJobs{dead: dead}
	env := jobEnv(t, f)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalJobCancel, nil) }, time.Hour)
	env.ExecuteWorkflow(workflows.RetryJobWorkflowType, workflows.JobInput{ID: "job-3", Signal: contract.SignalRetry,
		IDs: ids(200), Rate: 10, Canary: 0, MaxFailureRatio: 0.5})
	st := jobResult(t, env)
	require.Equal(t, workflows.JobCancelled, st.State)
	require.Contains(t, st.HaltReason, "dead-lettered again")
	require.Equal(t, workflows.JobBatchSize, st.Signalled, "halted after the first batch")
	require.Equal(t, 200-workflows.JobBatchSize, st.Pending)
}

// 10,000 records: the job continues as new every 20 batches (1,000 records), carrying its state.
func TestJobOfTenThousandContinuesAsNew(t *testing.T) {
	f := &fakeJobs{}
	env := jobEnv(t, f)
	env.ExecuteWorkflow(workflows.RetryJobWorkflowType, workflows.JobInput{ID: "job-4", Signal: contract.SignalAbandon,
		IDs: ids(10000), Rate: 100, MaxFailureRatio: 0.5})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, err, &can)
	require.Equal(t, 1000, len(f.signals), "one run does 20 batches of 50")
	var next workflows.JobInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Len(t, next.IDs, 9000)
	require.Equal(t, 1000, next.Status.Signalled)
	require.Equal(t, 10000, next.Status.Total)
}
