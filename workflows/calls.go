package workflows

import (
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
)

// captureSettings records the worker's retry settings in history (start and each retry).
func (r *recorder) captureSettings(ctx workflow.Context) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second},
		Summary:             "capture retry settings",
	})
	if err := workflow.ExecuteLocalActivity(lctx, contract.CurrentRetrySettingsName).Get(ctx, &r.settings); err != nil {
		return err
	}
	r.budgetLeft = r.settings.Budget
	return nil
}

// tcsReadOrMark are the options of an activity that reads or marks the record in TCS, retried
// under the captured settings (attempts 0: until it lands).
func (r *recorder) tcsReadOrMark(ctx workflow.Context, attempts int32, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: r.attemptTimeout() + contract.CapQueueWait,
		HeartbeatTimeout:    r.attemptTimeout(),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    r.settings.InitialInterval,
			BackoffCoefficient: r.settings.BackoffCoefficient,
			MaximumInterval:    r.settings.MaximumInterval,
			MaximumAttempts:    attempts,
		},
		Summary: summary + r.rec.Summary(),
	})
}

// notSent reports an activity failure whose last attempt was not sent to TCS.
func notSent(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == contract.ErrOutage
}

// priority is the task-queue priority of the phase's TCS calls: the server's default for fresh
// records, RecoveryPriority for recovery.
func (r *recorder) priority() temporal.Priority {
	if r.recovery {
		return temporal.Priority{PriorityKey: contract.RecoveryPriority}
	}
	return temporal.Priority{}
}

// attemptTimeout is the captured attempt timeout; histories from before it existed get 30 s.
func (r *recorder) attemptTimeout() time.Duration {
	if r.settings.AttemptTimeout > 0 {
		return r.settings.AttemptTimeout
	}
	return 30 * time.Second
}

// failure is what a failed TCS-update activity tells the workflow.
type failure struct {
	errType  string
	message  string
	attempts int
	status   int
	queued   bool          // the budget ran out with no attempt failed in this activity
	started  bool          // the activity's last attempt had started when it ended (it was in flight)
	took     time.Duration // how long the last attempt ran
	delay    time.Duration // the wait TCS asked for before the next attempt (Retry-After)
	// before is how long the activity ran before its last attempt started (the record's own time).
	before time.Duration
	// queuedAtCap: refused, the rate cap's queue being longer than the attempt could wait.
	queuedAtCap bool
	// timedOut: the attempt did not end by itself (no answer in its time, or its worker died).
	timedOut bool
}

// describe reads a failed TCS-update activity: its class, the last error in words, and how many
// attempts it made (carried in the error details; at least one).
func describe(err error) failure {
	f := failure{errType: contract.ErrTransient, message: err.Error(), attempts: 1}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		f.errType = appErr.Type()
		f.message = appErr.Message()
		f.delay = appErr.NextRetryDelay()
		var d contract.FailureDetails
		if appErr.HasDetails() && appErr.Details(&d) == nil {
			if d.Attempt > 0 {
				f.attempts = int(d.Attempt)
			}
			f.status, f.took, f.before, f.queuedAtCap = d.Status, d.Took, d.Before, d.Queued
		}
	}
	var actErr *temporal.ActivityError
	if errors.As(err, &actErr) {
		f.started = actErr.StartedEventID() != 0
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) && appErr == nil {
		f.timedOut = true
		f.message = "TCS did not answer in time (" + timeoutErr.TimeoutType().String() + ")"
		if t := timeoutErr.TimeoutType(); t == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE || t == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START {
			// No attempt failed before the budget ran out. If none had started either, the call
			// waited for a worker (a backlog behind the cap, after an outage): not sent.
			f.queued = true
			if !f.started {
				f.message = "waited for a worker longer than the retry budget left (" + t.String() + "): not sent"
			}
		}
	}
	return f
}
