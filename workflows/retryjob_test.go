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

func (f *fakeJobs) SendRequests(_ context.Context, req contract.SendRequest) ([]contract.Sent, error) {
	var out []contract.Sent
	for _, id := range req.IDs {
		if why, ok := f.skipped[id]; ok {
			out = append(out, contract.Sent{WorkflowID: id, Why: why})
			continue
		}
		f.signals = append(f.signals, id)
		out = append(out, contract.Sent{WorkflowID: id, Accepted: true})
	}
	return out, nil
}

func (f *fakeJobs) AwaitOutcomes(_ context.Context, req contract.AwaitRequest) ([]contract.JobOutcome, error) {
	var out []contract.JobOutcome
	for _, id := range req.IDs {
		f.outcomes++
		if f.dead[id] {
			out = append(out, contract.JobOutcome{WorkflowID: id, Result: contract.JobOutcomeDeadLettered, Reason: "TCS 404"})
		} else {
			out = append(out, contract.JobOutcome{WorkflowID: id, Result: contract.JobOutcomeCompleted})
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

// statusThen queries the job at test time at, then sends it signal; the status is filled in then.
func statusThen(t *testing.T, env *testsuite.TestWorkflowEnvironment, at time.Duration, signal string) *contract.JobStatus {
	st := &contract.JobStatus{}
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(contract.QueryJob)
		require.NoError(t, err)
		require.NoError(t, v.Get(st))
		env.SignalWorkflow(signal, nil)
	}, at)
	return st
}

func jobResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) contract.JobStatus {
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var st contract.JobStatus
	require.NoError(t, env.GetWorkflowResult(&st))
	return st
}

func TestJobRetriesACanaryThenTheRest(t *testing.T) {
	f := &fakeJobs{skipped: map[string]string{"placement-esr/7/A.DAT": "already retried 5 times"}}
	env := jobEnv(t, f)
	env.ExecuteWorkflow(contract.RetryJobWorkflowType, contract.JobInput{ID: "job-1", Signal: contract.SignalRetry,
		IDs: ids(120), Rate: 10, Canary: 1, MaxFailureRatio: 0.5, MaxRetries: 5, By: "ops"})
	st := jobResult(t, env)
	require.Equal(t, contract.JobDone, st.State)
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
	halted := statusThen(t, env, time.Hour, contract.SignalJobResume)
	env.ExecuteWorkflow(contract.RetryJobWorkflowType, contract.JobInput{ID: "job-2", Signal: contract.SignalRetry,
		IDs: ids(30), Rate: 10, Canary: 1, MaxFailureRatio: 0.5})
	require.Equal(t, contract.JobHalted, halted.State)
	require.Contains(t, halted.HaltReason, "canary failed")
	require.Equal(t, 1, halted.Signalled, "nothing beyond the canary while halted")
	st := jobResult(t, env)
	require.Equal(t, contract.JobDone, st.State)
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
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalJobCancel, nil) }, time.Hour)
	env.ExecuteWorkflow(contract.RetryJobWorkflowType, contract.JobInput{ID: "job-3", Signal: contract.SignalRetry,
		IDs: ids(200), Rate: 10, Canary: 0, MaxFailureRatio: 0.5})
	st := jobResult(t, env)
	require.Equal(t, contract.JobCancelled, st.State)
	require.Contains(t, st.HaltReason, "dead-lettered again")
	require.Equal(t, 10, st.Signalled, "halted after the first 10 outcomes")
	require.Equal(t, 190, st.Pending)
}

// 10,000 records: the job continues as new before its history grows long, carrying its state and
// the records it still watches; nothing is sent twice or lost across the hand-over.
func TestJobOfTenThousandContinuesAsNew(t *testing.T) {
	f := &fakeJobs{}
	env := jobEnv(t, f)
	env.ExecuteWorkflow(contract.RetryJobWorkflowType, contract.JobInput{ID: "job-4", Signal: contract.SignalAbandon,
		IDs: ids(10000), Rate: 10, MaxFailureRatio: 0.5})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, err, &can)
	var next contract.JobInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	sent := len(f.signals)
	require.Greater(t, sent, 1000, "chunks of a second at --rate 10")
	require.Less(t, sent, 10000)
	require.Len(t, next.IDs, 10000-sent)
	require.Equal(t, ids(10000)[sent:], next.IDs)
	st := next.Status
	require.Equal(t, sent, st.Signalled)
	require.Equal(t, 10000, st.Total)
	require.Equal(t, sent, st.Completed+len(next.Watching), "every record sent is counted or still watched")
}

// A job whose only record is a canary that dead-letters again is Halted, not Done: the operator
// sees that it stopped for a reason, and resumes or cancels it.
func TestJobHaltedOnItsLastBatchStaysHalted(t *testing.T) {
	f := &fakeJobs{dead: map[string]bool{"placement-esr/1/A.DAT": true}}
	env := jobEnv(t, f)
	halted := statusThen(t, env, time.Hour, contract.SignalJobCancel)
	env.ExecuteWorkflow(contract.RetryJobWorkflowType, contract.JobInput{ID: "job-5", Signal: contract.SignalRetry,
		IDs: ids(1), Rate: 10, Canary: 1, MaxFailureRatio: 0.5})
	require.Equal(t, contract.JobHalted, halted.State)
	require.Contains(t, halted.HaltReason, "canary failed")
	st := jobResult(t, env)
	require.Equal(t, contract.JobCancelled, st.State)
}

// Without a canary, the failure ratio is looked at after the first 10 outcomes, not after a whole
// batch of 50: a job of bad records stops after 10 signals.
func TestJobRatioHaltsAfterTenOutcomes(t *testing.T) {
	dead := map[string]bool{}
	for _, id := range ids(40) {
		dead[id] = true
	}
	f := &fakeJobs{dead: dead}
	env := jobEnv(t, f)
	halted := statusThen(t, env, time.Hour, contract.SignalJobResume)
	again := statusThen(t, env, 2*time.Hour, contract.SignalJobCancel)
	env.ExecuteWorkflow(contract.RetryJobWorkflowType, contract.JobInput{ID: "job-6", Signal: contract.SignalRetry,
		IDs: ids(40), Rate: 10, Canary: 0, MaxFailureRatio: 0.5})
	require.Equal(t, contract.JobHalted, halted.State)
	require.Equal(t, 10, halted.Signalled)
	require.Equal(t, 30, halted.Pending)
	require.Equal(t, contract.JobHalted, again.State, "resumed, the next went and dead-lettered again")
	require.Equal(t, 20, again.Signalled, "judged on the 10 outcomes since the resume, not the ratio before it")
	st := jobResult(t, env)
	require.Equal(t, 20, st.Signalled)
	require.Equal(t, contract.JobCancelled, st.State)
}

// A resume sent to a job that is running is not kept for later: the next halt still halts.
func TestJobResumeWhileRunningIsNotRemembered(t *testing.T) {
	dead := map[string]bool{}
	for _, id := range ids(40)[10:] {
		dead[id] = true
	}
	f := &fakeJobs{dead: dead}
	env := jobEnv(t, f)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalJobResume, nil) }, 0)
	halted := statusThen(t, env, time.Hour, contract.SignalJobCancel)
	env.ExecuteWorkflow(contract.RetryJobWorkflowType, contract.JobInput{ID: "job-7", Signal: contract.SignalRetry,
		IDs: ids(40), Rate: 10, Canary: 0, MaxFailureRatio: 0.1})
	require.Equal(t, contract.JobHalted, halted.State)
	require.Equal(t, contract.JobCancelled, jobResult(t, env).State)
}

// slowOutcomes never settles: its records stay updating until the activity is cancelled.
type slowOutcomes struct{ fakeJobs }

func (f *slowOutcomes) AwaitOutcomes(ctx context.Context, req contract.AwaitRequest) ([]contract.JobOutcome, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(20 * time.Second):
		return nil, nil
	}
}

// A cancel while the job waits for outcomes ends it then, not after the wait.
func TestJobCancelDuringTheOutcomeWait(t *testing.T) {
	f := &slowOutcomes{}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	workflows.RegisterJobs(env, f)
	env.OnUpsertMemo(mock.Anything).Return(nil)
	env.SetTestTimeout(time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalJobCancel, nil) }, time.Second)
	start := time.Now()
	env.ExecuteWorkflow(contract.RetryJobWorkflowType, contract.JobInput{ID: "job-8", Signal: contract.SignalRetry,
		IDs: ids(5), Rate: 10, Canary: 0, MaxFailureRatio: 0.5})
	require.Equal(t, contract.JobCancelled, jobResult(t, env).State)
	require.Less(t, time.Since(start), 15*time.Second, "the cancel did not wait for the outcomes (one last look of 10 s at most)")
}

// A canary is a record really retried: records the job skips (at --max-retries, closed) do not
// count as one, so the first record that takes the retry goes alone and its failure halts the job.
func TestJobCanaryIsARecordReallyRetried(t *testing.T) {
	all := ids(30)
	f := &fakeJobs{skipped: map[string]string{all[0]: "already retried 5 times (--max-retries 5)", all[1]: "closed"},
		dead: map[string]bool{all[2]: true}}
	env := jobEnv(t, f)
	halted := statusThen(t, env, time.Hour, contract.SignalJobCancel)
	env.ExecuteWorkflow(contract.RetryJobWorkflowType, contract.JobInput{ID: "job-9", Signal: contract.SignalRetry,
		IDs: all, Rate: 10, Canary: 1, MaxFailureRatio: 0.5, MaxRetries: 5})
	require.Equal(t, contract.JobHalted, halted.State)
	require.Contains(t, halted.HaltReason, "canary failed: "+all[2])
	require.Equal(t, []string{all[2]}, f.signals, "the skipped records were no canary; nothing went beside the real one")
	require.Equal(t, 2, halted.Skipped)
	st := jobResult(t, env)
	require.Equal(t, contract.JobCancelled, st.State)
	require.Equal(t, 1, st.Signalled)
	require.Equal(t, 27, st.Pending)
}
