package workflows

import (
	"fmt"
	"sort"
	"time"

	"github.com/tis-writeback/writeback/contract"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Retry jobs (SPEC section 5): retry or abandon a fixed set of dead letters as a durable job — it
// survives the CLI's exit and worker restarts, paces its signals, tries a canary first, halts when
// records keep dead-lettering again, and skips records operators already retried too often.
const (
	RetryJobWorkflowType = "WritebackRetryJob"
	// Activity names of a job.
	SignalBatchActivity   = "JobSignalBatch"
	AwaitOutcomesActivity = "JobAwaitOutcomes"
	// Signals to a job, and its query and memo key.
	SignalJobCancel = "cancel"
	SignalJobResume = "resume"
	QueryJob        = "job"
	MemoJob         = "job"
	// Job states.
	JobRunning   = "Running"
	JobHalted    = "Halted"
	JobDone      = "Done"
	JobCancelled = "Cancelled"
)

// Outcomes a job counts (the same words as internal/operate's).
const (
	JobOutcomeCompleted    = "completed"
	JobOutcomeDeadLettered = "dead-lettered again"
	JobOutcomeAbandoned    = "abandoned"
)

// JobBatchSize is how many records a job signals between two looks at their outcomes.
const JobBatchSize = 50

// jobRatioOutcomes is how many outcomes the failure ratio needs (SPEC section 5). Until a job has
// them its batches are this small, so a job of bad records halts after about this many signals.
const jobRatioOutcomes = 10

// versionJobHaltsPromptly: the ratio is looked at after the first 10 outcomes, a cancel ends the
// wait for outcomes, a halt on the last batch stays Halted, and a resume counts only when halted.
const versionJobHaltsPromptly = "job-halts-promptly"

// jobBatchesPerRun bounds a run's history: a job continues as new after this many batches.
const jobBatchesPerRun = 20

// RetryJobID names a job started at t (the CLI adds a random suffix).
func RetryJobID(t time.Time, suffix string) string {
	return "retry-job-" + t.UTC().Format("20060102T150405") + "-" + suffix
}

// JobInput is a job's input; Status is set when it continues as new.
type JobInput struct {
	ID              string        `json:"id"`
	Signal          string        `json:"signal"` // retry or abandon
	IDs             []string      `json:"ids"`    // the records still to do, in order
	Rate            float64       `json:"rate"`
	Canary          int           `json:"canary"`
	MaxFailureRatio float64       `json:"maxFailureRatio"`
	MaxRetries      int           `json:"maxRetries"`
	Reason          string        `json:"reason,omitempty"`
	By              string        `json:"by,omitempty"`
	OutcomeWait     time.Duration `json:"outcomeWait,omitempty"` // how long a batch's outcomes are awaited (default 2 min)
	// SkippedAtStart counts the targets that were not parked dead letters when the job started (closed,
	// or in another state): they are in the job's total and skipped, never signalled. SkippedExamples
	// names the first of them.
	SkippedAtStart  int          `json:"skippedAtStart,omitempty"`
	SkippedExamples []JobFailure `json:"skippedExamples,omitempty"`
	Status          *JobStatus   `json:"status,omitempty"`
}

// JobStatus is what `jobs show --json` prints.
type JobStatus struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Total        int    `json:"total"`
	Signalled    int    `json:"signalled"`
	Completed    int    `json:"completed"`
	DeadLettered int    `json:"deadLettered"`
	Abandoned    int    `json:"abandoned"`
	Skipped      int    `json:"skipped"`
	Pending      int    `json:"pending"`
	HaltReason   string `json:"haltReason"`
	By           string `json:"by"`
	Reason       string `json:"reason"`
	StartedAt    string `json:"startedAt"`
	// Updating counts records signalled whose outcome was not known when their batch was looked at.
	Updating   int          `json:"updating"`
	CanaryDone bool         `json:"canaryDone"`
	Recent     []JobFailure `json:"recent,omitempty"` // the last records that dead-lettered again or were skipped
}

// JobFailure is one record a job could not bring through.
type JobFailure struct {
	WorkflowID string `json:"workflowId"`
	What       string `json:"what"` // dead-lettered again, skipped
	Reason     string `json:"reason"`
}

// BatchRequest is one batch for the signal activity.
type BatchRequest struct {
	JobID      string                 `json:"jobId"`
	Signal     string                 `json:"signal"`
	IDs        []string               `json:"ids"`
	Rate       float64                `json:"rate"`
	MaxRetries int                    `json:"maxRetries"`
	Payload    contract.SignalPayload `json:"payload"`
}

// BatchResult is what the signal activity did.
type BatchResult struct {
	Signalled []string          `json:"signalled"`
	Before    map[string]string `json:"before"`  // deadLetteredAt before the signal
	Skipped   map[string]string `json:"skipped"` // workflow ID → why
}

// AwaitRequest asks for the outcomes of signalled records.
type AwaitRequest struct {
	IDs    []string          `json:"ids"`
	Before map[string]string `json:"before"`
	Wait   time.Duration     `json:"wait"`
}

// JobOutcome is one record's outcome (see internal/operate).
type JobOutcome struct {
	WorkflowID string `json:"workflowId"`
	Result     string `json:"result"`
	Reason     string `json:"reason,omitempty"`
}

// RetryJob runs a retry job.
func RetryJob(ctx workflow.Context, in JobInput) (JobStatus, error) {
	j := &job{in: in}
	if err := j.setup(ctx); err != nil {
		return j.st, err
	}
	return j.run(ctx)
}

type job struct {
	in                 JobInput
	st                 JobStatus
	cancelled, resumed bool
	prompt             bool // versionJobHaltsPromptly
}

func (j *job) setup(ctx workflow.Context) error {
	j.prompt = workflow.GetVersion(ctx, versionJobHaltsPromptly, workflow.DefaultVersion, 1) >= 1
	if j.in.Status != nil {
		j.st = *j.in.Status
	} else {
		j.st = JobStatus{ID: j.in.ID, State: JobRunning, Total: len(j.in.IDs) + j.in.SkippedAtStart, Pending: len(j.in.IDs),
			Skipped: j.in.SkippedAtStart, By: j.in.By, Reason: j.in.Reason, StartedAt: workflow.Now(ctx).UTC().Format(time.RFC3339)}
		for _, f := range j.in.SkippedExamples {
			j.note(f)
		}
		j.in.SkippedExamples = nil // kept in the status; not carried into a continued run
	}
	if err := workflow.SetQueryHandler(ctx, QueryJob, func() (JobStatus, error) { return j.st, nil }); err != nil {
		return err
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(workflow.GetSignalChannel(ctx, SignalJobCancel), func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			j.cancelled = true
		})
		sel.AddReceive(workflow.GetSignalChannel(ctx, SignalJobResume), func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			if j.prompt && j.st.State != JobHalted {
				workflow.GetLogger(ctx).Info("resume ignored: the job is not halted", "state", j.st.State)
				return
			}
			j.resumed = true
		})
		for {
			sel.Select(ctx)
		}
	})
	return j.publish(ctx)
}

// publish keeps the job's status in its memo, so `jobs` lists it without a worker.
func (j *job) publish(ctx workflow.Context) error {
	return workflow.UpsertMemo(ctx, map[string]any{MemoJob: j.st})
}

func (j *job) run(ctx workflow.Context) (JobStatus, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	wait := j.in.OutcomeWait
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	for batches := 0; len(j.in.IDs) > 0; batches++ {
		if err := j.gate(ctx); err != nil || j.st.State == JobCancelled {
			return j.st, err
		}
		if batches == jobBatchesPerRun {
			st := j.st
			next := j.in
			next.Status = &st
			return j.st, workflow.NewContinueAsNewError(ctx, RetryJobWorkflowType, next)
		}
		canary := !j.st.CanaryDone && j.in.Canary > 0
		n := JobBatchSize
		switch {
		case canary:
			n = j.in.Canary
		case j.prompt && j.st.Completed+j.st.DeadLettered+j.st.Abandoned < jobRatioOutcomes && j.st.Signalled < JobBatchSize:
			// (outcomes that stay unknown, e.g. during a TCS hold, end the small batches after 50 signals)
			n = jobRatioOutcomes
		}
		batch := j.in.IDs[:min(n, len(j.in.IDs))]
		var br BatchResult
		req := BatchRequest{JobID: j.st.ID, Signal: j.in.Signal, IDs: batch, Rate: j.in.Rate, MaxRetries: j.in.MaxRetries,
			Payload: contract.SignalPayload{Reason: j.in.Reason, By: j.in.By, Job: j.st.ID}}
		// A cancel stops the batch in the middle (the activity heartbeats after each signal).
		bctx, stopBatch := workflow.WithCancel(actx)
		f := workflow.ExecuteActivity(bctx, SignalBatchActivity, req)
		if err := workflow.Await(ctx, func() bool { return f.IsReady() || j.cancelled }); err != nil {
			return j.st, err
		}
		if !f.IsReady() {
			stopBatch()
			_ = f.Get(ctx, nil)
			j.st.State = JobCancelled
			return j.st, j.publish(ctx)
		}
		stopBatch()
		if err := f.Get(ctx, &br); err != nil {
			return j.st, err
		}
		j.in.IDs = j.in.IDs[len(batch):]
		j.st.Pending -= len(batch)
		j.st.Signalled += len(br.Signalled)
		j.st.Skipped += len(br.Skipped)
		skipped := make([]string, 0, len(br.Skipped))
		//workflowcheck:ignore sorted below
		for id := range br.Skipped {
			skipped = append(skipped, id)
		}
		sort.Strings(skipped) // workflow code: no map order
		for _, id := range skipped {
			j.note(JobFailure{WorkflowID: id, What: "skipped", Reason: br.Skipped[id]})
		}
		var outs []JobOutcome
		if len(br.Signalled) > 0 {
			w := wait
			if canary {
				w = max(wait, 10*time.Minute) // the canary must settle before the rest go
			}
			wctx, stopWait := workflow.WithCancel(actx)
			f := workflow.ExecuteActivity(wctx, AwaitOutcomesActivity, AwaitRequest{IDs: br.Signalled, Before: br.Before, Wait: w})
			if j.prompt {
				if err := workflow.Await(ctx, func() bool { return f.IsReady() || j.cancelled }); err != nil {
					return j.st, err
				}
				if !f.IsReady() { // cancelled: the signalled records' outcomes stay unknown
					stopWait()
					_ = f.Get(ctx, nil)
					j.st.Updating += len(br.Signalled)
					j.st.State = JobCancelled
					return j.st, j.publish(ctx)
				}
			}
			err := f.Get(ctx, &outs)
			stopWait()
			if err != nil {
				return j.st, err
			}
		}
		canaryFailed := ""
		for _, o := range outs {
			switch o.Result {
			case JobOutcomeCompleted:
				j.st.Completed++
			case JobOutcomeAbandoned:
				j.st.Abandoned++
			case JobOutcomeDeadLettered:
				j.st.DeadLettered++
				j.note(JobFailure{WorkflowID: o.WorkflowID, What: o.Result, Reason: o.Reason})
				canaryFailed = o.WorkflowID + ": " + o.Reason
			default:
				j.st.Updating++
				if canary && j.in.Signal == contract.SignalRetry {
					canaryFailed = o.WorkflowID + " did not complete in time"
				}
			}
		}
		switch {
		case canary && canaryFailed != "":
			j.halt(ctx, "canary failed: "+canaryFailed)
		case canary:
			j.st.CanaryDone = true
		default:
			outcomes := j.st.Completed + j.st.DeadLettered + j.st.Abandoned
			if outcomes >= 10 && float64(j.st.DeadLettered)/float64(outcomes) > j.in.MaxFailureRatio {
				j.halt(ctx, fmt.Sprintf("%d of %d records dead-lettered again (more than %.0f%%)", j.st.DeadLettered, outcomes,
					j.in.MaxFailureRatio*100))
			}
		}
		if err := j.publish(ctx); err != nil {
			return j.st, err
		}
	}
	if j.prompt && !j.cancelled && j.st.State == JobHalted {
		// Halted on the last batch: it stays Halted (the operator should see why) until resumed or cancelled.
		if err := j.gate(ctx); err != nil {
			return j.st, err
		}
	}
	switch {
	case j.cancelled:
		j.st.State = JobCancelled
	default: // nothing left to do (before versionJobHaltsPromptly, a halt on the last batch kept its reason)
		j.st.State = JobDone
	}
	return j.st, j.publish(ctx)
}

// gate waits while the job is halted, until it is resumed or cancelled.
func (j *job) gate(ctx workflow.Context) error {
	if j.cancelled {
		j.st.State = JobCancelled
		return j.publish(ctx)
	}
	if j.st.State != JobHalted {
		return nil
	}
	if err := workflow.Await(ctx, func() bool { return j.cancelled || j.resumed }); err != nil {
		return err
	}
	j.resumed = false
	if j.cancelled {
		j.st.State = JobCancelled
	} else {
		j.st.State, j.st.HaltReason = JobRunning, ""
		j.st.CanaryDone = true // an operator looked and resumed: the canary's word is not needed again
		workflow.GetLogger(ctx).Info("job resumed")
	}
	return j.publish(ctx)
}

func (j *job) halt(ctx workflow.Context, why string) {
	j.st.State, j.st.HaltReason = JobHalted, why
	workflow.GetLogger(ctx).Warn("job halted", "why", why)
}

func (j *job) note(f JobFailure) {
	j.st.Recent = append(j.st.Recent, f)
	if len(j.st.Recent) > 20 {
		j.st.Recent = j.st.Recent[len(j.st.Recent)-20:]
	}
}
