// Package workflows holds writeback's durable workflows. The two record workflows share one shape,
// a few phases, each one function below:
//
//	writing ──ok──────────────────────────────────────────▶ completed
//	   │ ├─refused (outage, hold, cap queue)─▶ waitingForTCS ──▶ writing
//	   │ ├─401/403──────────────────────────▶ waitingForCredentials ──▶ writing
//	   │ ├─budget spent──▶ lookingBeforeDeadLetter ──held──▶ completed
//	   │ └─permanent answer, poison ──────────┴──────▶ deadLettering ──held──▶ completed
//	   │                                                    │
//	   │                                                  parked ──abandon──▶ abandoned
//	   └◀──────────────────────────── retry (signal or Update) ┘ └─parking period over──▶ expired
//
// Each attempt is one activity; the workflow waits the backoff and keeps the budget (budgetLeft): the
// record's own time, what its attempts took and the backoff after each. Time spent refused, held,
// waiting for credentials, queued for a worker or at the rate cap is never charged.
package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
)

// RecordPlacementExport writes one exported placement's EXPORTED event to TCS.
// carry is nil when started from a message; it is set only by continue-as-new.
func RecordPlacementExport(ctx workflow.Context, msg contract.PlacementExported, carry *contract.Carry) (contract.Status, error) {
	return run(ctx, msg, carry)
}

// RecordScanResult writes one finished scan's result to TCS.
func RecordScanResult(ctx workflow.Context, msg contract.ScanCompleted, carry *contract.Carry) (contract.Status, error) {
	return run(ctx, msg, carry)
}

// recorder is one run's state.
type recorder struct {
	rec contract.Message
	log log.Logger

	// What the record shows (query, search attributes) and what it carries across continue-as-new.
	status     contract.Status
	settings   contract.RetrySettings
	budgetLeft time.Duration
	failure    string // the group of the last dead-lettering (WritebackFailure)

	// The operator's side: the request to act on next, and the request IDs acted on (the latest
	// maxActed, carried across continue-as-new).
	pending *decision
	acted   []string

	// poison is why the message is invalid (from the starter): it is dead-lettered, never written,
	// until a retry brings a corrected record.
	poison, poisonGroup string

	// wakes counts SignalTCSAvailable: a wait for TCS ends when it moves past the count taken
	// before the refused call (a wake that arrives while the call returns is not lost).
	wakes int

	// The writing phase's own: fresh while its first attempt (the local fast path, which also
	// captures the settings) is still to come; recovery when it recovers a record (a retry of a
	// dead letter, a redriven or reconciled message), so its TCS calls run at RecoveryPriority behind
	// fresh records, without the fast path (a local activity has no priority); and how many waits for
	// TCS and for credentials it took (each waits longer).
	fresh, recovery                       bool
	backoffs, outageWaits, configFailures int
}

// phase runs one phase of the record and returns the next (nil: the run ends).
type phase func(ctx workflow.Context) (phase, error)

func run(ctx workflow.Context, rec contract.Message, carry *contract.Carry) (contract.Status, error) {
	r := &recorder{rec: rec, log: log.With(workflow.GetLogger(ctx), "kind", rec.Kind(), "recordId", rec.RecordID())}
	if err := r.setup(ctx, carry); err != nil {
		return r.status, err
	}
	return r.run(ctx)
}

func (r *recorder) setup(ctx workflow.Context, carry *contract.Carry) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, contract.QueryState, func() (contract.Status, error) { return r.status, nil },
		workflow.QueryHandlerOptions{Description: "state, attempts, lastError, deadLetteredAt, retries"}); err != nil {
		return err
	}
	if err := r.listenForSignals(ctx); err != nil {
		return err
	}

	if carry != nil && carry.Status.State != "" {
		r.status, r.settings, r.budgetLeft = carry.Status, carry.Settings, carry.BudgetLeft
	} else {
		r.status.State = contract.StateUpdating
		r.fresh = true
	}
	if carry != nil {
		r.poison, r.poisonGroup, r.recovery, r.acted, r.backoffs = carry.Poison, carry.PoisonGroup, carry.Recovery, carry.Acted, carry.Backoffs
	} else if workflow.GetInfo(ctx).Priority.PriorityKey >= contract.RecoveryPriority {
		r.recovery = true
	}
	workflow.SetCurrentDetails(ctx, r.rec.Summary())
	return r.publishState(ctx)
}
func (r *recorder) run(ctx workflow.Context) (contract.Status, error) {
	next := r.parked
	if r.status.State == contract.StateUpdating {
		next = r.writing
	}
	for next != nil {
		var err error
		if next, err = next(ctx); err != nil {
			return r.status, err
		}
	}
	return r.status, nil
}

// writing (Updating) sends the record to TCS: a poison message goes straight to dead-lettering; a
// fresh phase starts with its first attempt; then one attempt at a time, while the budget lasts.
func (r *recorder) writing(ctx workflow.Context) (phase, error) {
	if r.poison != "" {
		if r.settings == (contract.RetrySettings{}) {
			if err := r.captureSettings(ctx); err != nil {
				return nil, err
			}
		}
		return r.deadLettering(r.poison, r.poisonGroup), nil
	}
	if r.fresh {
		r.fresh = false
		if !r.recovery {
			return r.firstAttempt(ctx)
		}
		if err := r.captureSettings(ctx); err != nil {
			return nil, err
		}
	}
	if r.budgetLeft <= 0 {
		return r.lookingBeforeDeadLetter(fmt.Sprintf("retry budget of %s spent; last error: %s", r.settings.Budget, r.status.LastError)), nil
	}
	return r.attempt(ctx)
}

// firstAttempt runs the phase's first TCS update as a local activity, capturing the settings; what
// it cannot settle goes on in writing.
func (r *recorder) firstAttempt(ctx workflow.Context) (phase, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		// Two TCS requests at most; anything slower falls back to the regular activity.
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		Summary:             "first attempt: write " + r.rec.Summary(),
	})
	var fa contract.FirstAttempt
	seen := r.wakes
	if lerr := workflow.ExecuteLocalActivity(lctx, r.rec.Kind().Spec().FirstAttempt, r.rec).Get(ctx, &fa); lerr != nil {
		// The local activity itself failed (timeout, worker trouble): capture the settings the
		// regular way and go on with regular attempts.
		r.status.Attempts++
		r.status.LastError = describe(lerr).message
		if err := r.captureSettings(ctx); err != nil {
			return nil, err
		}
		return r.writing, r.wait(ctx, r.settings.InitialInterval, "first attempt failed: waiting before retrying")
	}
	r.settings, r.budgetLeft = fa.Settings, fa.Settings.Budget
	r.status.Attempts++
	switch fa.ErrType {
	case "":
		return r.completed, nil
	case contract.ErrPermanent:
		r.status.LastError = fa.Message
		return r.deadLettering(fa.Message, contract.TCSGroup(fa.Status)), nil
	case contract.ErrOutage:
		r.status.Attempts-- // not sent: not an attempt
		r.status.LastError = fa.Message
		if fa.Queued {
			// The cap's queue was longer than the fast path waits: the activity waits its turn.
			return r.writing, nil
		}
		return r.writing, r.awaitTCS(ctx, r.settings.InitialInterval, seen)
	default:
		r.status.LastError = fa.Message
		return r.writing, r.wait(ctx, max(r.settings.InitialInterval, fa.RetryAfter), "first attempt failed: waiting before retrying")
	}
}

// attempt sends the record to TCS once: one activity with one attempt, whose answer picks the next
// phase. The record's own time is the attempt's and the backoff after it; the wait for a worker and
// at the rate cap, a refusal and a wait for credentials are not.
func (r *recorder) attempt(ctx workflow.Context) (phase, error) {
	// Added after 1.0: runs from before it let the server retry the activity under the budget. May
	// retire once no run from before this change can still be open: the parking period (30 days)
	// plus a week after the first release with it; legacy.go goes with it.
	if workflow.GetVersion(ctx, "own-retries", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return r.legacyAttempt(ctx)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// An attempt may first wait its turn at the TCS rate cap; the heartbeat finds a dead worker.
		StartToCloseTimeout: r.attemptTimeout() + contract.CapQueueWait,
		HeartbeatTimeout:    r.attemptTimeout(),
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		Summary:             "write " + r.rec.Summary(),
		Priority:            r.priority(),
	})
	seen := r.wakes
	var res contract.UpdateResult
	err := workflow.ExecuteActivity(actx, r.rec.Kind().Spec().Update, r.rec).Get(ctx, &res)
	if err == nil {
		r.status.Attempts++
		return r.completed, nil
	}
	f := describe(err)
	r.status.LastError = f.message
	if f.errType == contract.ErrOutage || f.queued && !f.started {
		// Not sent: TCS fails for everyone (outage mode), an operator holds requests, or the cap's
		// queue was too long. Not an attempt, and nothing of the budget.
		if f.queuedAtCap {
			return r.waitingForTCS(r.settings.InitialInterval, seen), nil // nothing to wait for but the queue
		}
		wait := min(contract.Backoff(r.settings, r.outageWaits), contract.OutageWaitMax)
		r.outageWaits++
		return r.waitingForTCS(wait, seen), nil
	}
	r.status.Attempts++
	switch f.errType {
	case contract.ErrPermanent:
		return r.deadLettering(f.message, contract.TCSGroup(f.status)), nil
	case contract.ErrConfig:
		return r.waitingForCredentials(f.message), nil
	default:
		return r.backingOff(f), nil
	}
}

// backingOff charges the budget a failed attempt's own time and the backoff before the next (at
// least what TCS asked for in Retry-After); when they no longer fit in it, the budget is spent.
func (r *recorder) backingOff(f failure) phase {
	return func(ctx workflow.Context) (phase, error) {
		own := min(max(f.took, 0), r.attemptTimeout())
		if f.timedOut {
			own = r.attemptTimeout() // no answer within its time, or its worker died
		}
		wait := max(contract.Backoff(r.settings, r.backoffs), f.delay)
		r.backoffs++
		r.budgetLeft -= own
		if r.budgetLeft < wait {
			r.budgetLeft = 0
			return r.writing, nil
		}
		r.budgetLeft -= wait
		if err := r.wait(ctx, wait, "TCS failed: waiting before the next attempt"); err != nil {
			return nil, err
		}
		return r.handOverIfLong(ctx)
	}
}

// waitingForTCS waits up to wait for TCS to take requests again (a worker signals when it does);
// the budget's clock stands still.
func (r *recorder) waitingForTCS(wait time.Duration, seen int) phase {
	return func(ctx workflow.Context) (phase, error) {
		if err := r.awaitTCS(ctx, wait, seen); err != nil {
			return nil, err
		}
		return r.handOverIfLong(ctx)
	}
}

// waitingForCredentials waits after TCS refused our credentials (401/403): they are wrong, not the
// record, so it tries again without end and the budget's clock stands still; the worker counts these
// answers in a metric that alerts.
func (r *recorder) waitingForCredentials(why string) phase {
	return func(ctx workflow.Context) (phase, error) {
		wait := contract.Backoff(r.settings, r.configFailures)
		r.configFailures++
		r.log.Error("TCS refused our credentials; waiting before trying again", "error", why, "wait", wait)
		if err := r.wait(ctx, wait, "TCS refused credentials (401/403): waiting"); err != nil {
			return nil, err
		}
		return r.handOverIfLong(ctx)
	}
}

// handOverIfLong goes on writing, in a new run (continue-as-new) when the history has grown long.
func (r *recorder) handOverIfLong(ctx workflow.Context) (phase, error) {
	if !workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
		return r.writing, nil
	}
	return nil, workflow.NewContinueAsNewError(ctx, r.rec.Kind().Spec().WorkflowType, r.rec,
		&contract.Carry{Status: r.status, Settings: r.settings, BudgetLeft: r.budgetLeft, Recovery: r.recovery, Acted: r.acted,
			Backoffs: r.backoffs})
}

// lookingBeforeDeadLetter reads TCS once the budget is spent: writes whose answers were lost may
// have landed, and a record TCS holds completes.
func (r *recorder) lookingBeforeDeadLetter(cause string) phase {
	return func(ctx workflow.Context) (phase, error) {
		written, err := r.checkWritten(ctx)
		if err != nil {
			// TCS does not answer this record's read either: dead-lettering marks it (retried until
			// it lands), and that mark still finds a record TCS holds.
			r.log.Warn("could not look in TCS before dead-lettering", "error", err.Error())
		}
		if written {
			r.log.Info("the retry budget ran out, but TCS holds the record: completed, not dead-lettered")
			return r.completed, nil
		}
		return r.deadLettering(cause, contract.GroupBudgetSpent), nil
	}
}

// checkWritten reads TCS for the record: a few attempts, since the record's budget is spent.
func (r *recorder) checkWritten(ctx workflow.Context) (bool, error) {
	actx := r.tcsReadOrMark(ctx, 3, "look in TCS before dead-lettering: ")
	for waits := 0; ; waits++ {
		var written bool
		seen := r.wakes
		err := workflow.ExecuteActivity(actx, r.rec.Kind().Spec().Check, r.rec).Get(ctx, &written)
		if !notSent(err) {
			return written, err
		}
		// Not sent (outage mode, hold): wait for TCS and look then, rather than dead-letter blind.
		if err := r.awaitTCS(ctx, min(contract.Backoff(r.settings, waits), contract.OutageWaitMax), seen); err != nil {
			return false, err
		}
	}
}

// deadLettering marks the record errored in TCS (retried until it lands: a dead letter must not be
// lost either) and parks it. A mark that finds TCS holding the record as written (a write whose
// answer was lost landed, and the look before could not tell) completes it instead, with nothing
// marked and no CRITICAL line.
func (r *recorder) deadLettering(cause, group string) phase {
	return func(ctx workflow.Context) (phase, error) {
		now := workflow.Now(ctx).UTC()
		dl := r.rec.DeadLetterRef(contract.DeadLetter{
			Kind: string(r.rec.Kind()), RecordID: r.rec.RecordID(), Group: group, Attempts: r.status.Attempts,
			LastError: cause, DeadLetteredAt: now,
		})
		var res contract.MarkResult
		if err := workflow.ExecuteActivity(r.tcsReadOrMark(ctx, 0, "mark errored in TCS: "), r.rec.Kind().Spec().Mark, dl).Get(ctx, &res); err != nil {
			return nil, err
		}
		// Added after 1.0: a run whose mark found the record held took the dead-letter path before.
		// May retire once no run from before this change can still be open: the parking period (30
		// days) plus a week after the first release with it.
		if res.Held && workflow.GetVersion(ctx, "held-at-dead-letter", workflow.DefaultVersion, 1) == 1 {
			r.log.Info("the record was to be dead-lettered, but TCS holds it as written: completed", "note", res.Note)
			return r.completed, nil
		}
		r.status.LastError = cause
		r.failure = group
		r.status.DeadLetteredAt = now.Format(time.RFC3339Nano)
		r.countMetric(ctx, contract.MetricDeadLetters)
		return r.parked, r.setState(ctx, contract.StateDeadLettered)
	}
}

// parked (DeadLettered) waits for an operator's retry or abandon, up to the parking period.
func (r *recorder) parked(ctx workflow.Context) (phase, error) {
	at, _ := time.Parse(time.RFC3339Nano, r.status.DeadLetteredAt)
	wait := at.Add(r.settings.ParkingPeriod).Sub(workflow.Now(ctx))
	got := false
	if wait > 0 {
		var err error
		got, err = workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      wait,
			TimerOptions: workflow.TimerOptions{Summary: "parked: waiting for a retry or abandon signal"},
		}, func() bool { return r.pending != nil })
		if err != nil {
			return nil, err
		}
	}
	if !got {
		return r.expired, nil
	}
	d := r.pending
	r.pending = nil
	if d.signal == contract.SignalAbandon {
		return r.abandoned, nil
	}
	// A retry: a new writing phase, as recovery, with the corrected record if one came.
	r.status.Retries++
	r.countMetric(ctx, contract.MetricManualRetries)
	if d.record != nil {
		r.rec, r.poison, r.poisonGroup = d.record, "", ""
	}
	r.fresh, r.recovery = true, true
	r.backoffs, r.outageWaits, r.configFailures = 0, 0, 0
	return r.writing, r.setState(ctx, contract.StateUpdating)
}

// expired ends a dead letter whose parking period passed: nothing more will happen to it, so it
// says so loudly, with the record, and counts it.
func (r *recorder) expired(ctx workflow.Context) (phase, error) {
	r.log.Error("dead letter expired: its parking period ended without a retry or abandon; it closes as DeadLettered "+
		"and only an operator can write it now (reconcile, or a new message)",
		"workflowId", workflow.GetInfo(ctx).WorkflowExecution.ID, "lastError", r.status.LastError,
		"deadLetteredAt", r.status.DeadLetteredAt, "parkingPeriod", r.settings.ParkingPeriod.String())
	r.countMetric(ctx, contract.MetricDeadLettersExpired)
	return nil, nil
}

func (r *recorder) completed(ctx workflow.Context) (phase, error) {
	return nil, r.setState(ctx, contract.StateCompleted)
}

func (r *recorder) abandoned(ctx workflow.Context) (phase, error) {
	return nil, r.setState(ctx, contract.StateAbandoned)
}

// awaitTCS waits up to d for TCS to take requests again: until a SignalTCSAvailable beyond the
// count seen before the refused call.
func (r *recorder) awaitTCS(ctx workflow.Context, d time.Duration, seen int) error {
	_, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
		Timeout:      d,
		TimerOptions: workflow.TimerOptions{Summary: "TCS unavailable for everyone (outage mode or hold): waiting"},
	}, func() bool { return r.wakes > seen })
	return err
}

// wait sleeps on a durable timer with a summary the UI shows.
func (r *recorder) wait(ctx workflow.Context, d time.Duration, summary string) error {
	return workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{Summary: summary}).Get(ctx, nil)
}

func (r *recorder) countMetric(ctx workflow.Context, name string) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": string(r.rec.Kind())}).Counter(name).Inc(1)
}

func (r *recorder) setState(ctx workflow.Context, state string) error {
	r.status.State = state
	return r.publishState(ctx)
}

// publishState upserts the search attributes that differ from what the workflow already shows
// (a starter may have set them at start, which saves an event).
func (r *recorder) publishState(ctx workflow.Context) error {
	current := workflow.GetTypedSearchAttributes(ctx)
	var updates []temporal.SearchAttributeUpdate
	type keyword struct {
		key   temporal.SearchAttributeKeyKeyword
		value string
	}
	want := []keyword{{contract.KindKey, string(r.rec.Kind())}, {contract.RecordIDKey, r.rec.RecordID()}, {contract.StateKey, r.status.State}}
	if r.failure != "" {
		want = append(want, keyword{contract.FailureKey, r.failure})
	}
	for _, w := range want {
		if v, ok := current.GetKeyword(w.key); !ok || v != w.value {
			updates = append(updates, w.key.ValueSet(w.value))
		}
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** — %s", r.status.State, r.rec.Summary()))
	if len(updates) == 0 {
		return nil
	}
	return workflow.UpsertTypedSearchAttributes(ctx, updates...)
}
