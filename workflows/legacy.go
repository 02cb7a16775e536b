package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
)

// legacyAttempt is how runs started before "own-retries" write: the TCS-update activity under the
// server's retry policy, with the budget left as its schedule-to-close timeout, after which the
// record's own share of the elapsed time is worked out from the failure. It retires with that change.
func (r *recorder) legacyAttempt(ctx workflow.Context) (phase, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// The budget: how long transient failures may go on. 401/403 do not spend it.
		ScheduleToCloseTimeout: r.budgetLeft,
		// An attempt may first wait its turn at the TCS rate cap; the heartbeat finds a dead worker.
		StartToCloseTimeout: r.attemptTimeout() + contract.CapQueueWait,
		HeartbeatTimeout:    r.attemptTimeout(),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        r.settings.InitialInterval,
			BackoffCoefficient:     r.settings.BackoffCoefficient,
			MaximumInterval:        r.settings.MaximumInterval,
			NonRetryableErrorTypes: contract.NonRetryableErrorTypes,
		},
		Summary:  "write " + r.rec.Summary(),
		Priority: r.priority(),
	})
	start, seen := workflow.Now(ctx), r.wakes
	var res contract.UpdateResult
	err := workflow.ExecuteActivity(actx, r.rec.Kind().Spec().Update, r.rec).Get(ctx, &res)
	elapsed := workflow.Now(ctx).Sub(start)
	r.budgetLeft -= elapsed
	if err == nil {
		r.status.Attempts += int(max(res.Attempt, 1))
		return r.completed, nil
	}
	f := describe(err)
	if f.queued && !f.started {
		// Waited behind a backlog: like a refusal, not the record's time. (An attempt that was in
		// flight when the budget ran out, a slow TCS, is the record's own.)
		f.errType = contract.ErrOutage
	}
	r.status.Attempts += f.attempts
	r.status.LastError = f.message
	switch f.errType {
	case contract.ErrPermanent:
		return r.deadLettering(f.message, contract.TCSGroup(f.status)), nil
	case contract.ErrOutage:
		// Not sent: TCS fails for everyone (outage mode), an operator holds requests, or the cap's
		// queue was too long. The refused call was not an attempt, and the time from its start —
		// waiting for a worker behind everyone's held-back records, any attempt that went out as a
		// probe — is not this record's; its own attempts and backoff before it are.
		r.status.Attempts--
		r.budgetLeft += max(elapsed-r.ownBefore(f), 0)
		if f.queuedAtCap {
			return r.waitingForTCS(r.settings.InitialInterval, seen), nil // nothing to wait for but the queue
		}
		wait := min(contract.Backoff(r.settings, r.outageWaits), contract.OutageWaitMax)
		r.outageWaits++
		return r.waitingForTCS(wait, seen), nil
	case contract.ErrConfig:
		return r.waitingForCredentials(f.message), nil
	default:
		// Transient failures until the budget ran out (the retry policy gave up). The activity's
		// clock also ran while a retry waited in the queue for a worker (a backlog behind the cap,
		// after an outage); that time is the backlog's, not the record's: give it back.
		r.budgetLeft = 0
		if waited := contract.WaitedBeyond(r.settings, r.attemptTimeout(), f.attempts, f.took, f.delay, f.started, elapsed); waited > time.Second {
			r.budgetLeft = waited
			r.log.Info("the retry budget ran out while a retry waited for a worker: that wait is not the record's",
				"waited", waited, "attempts", f.attempts)
		}
		return r.writing, nil
	}
}

// ownBefore is the record's own time before a refused attempt: the activity's time before that
// attempt started, at most what its earlier attempts and the backoff between them can have taken
// (their waits for a worker or at the cap are not the record's).
func (r *recorder) ownBefore(f failure) time.Duration {
	return min(f.before, contract.MostOwn(r.settings, r.attemptTimeout(), f.attempts-1))
}
