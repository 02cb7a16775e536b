// Package workflows holds the two durable writeback workflows. Both have one shape: write the record
// to TCS under a retry policy; on a permanent error or a spent budget, mark it errored in TCS and park
// it as a dead letter that waits for a retry or abandon signal.
package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
)

// RecordPlacementExport writes one exported placement's EXPORTED event to TCS.
// carry is nil when started from a message; it is set only by continue-as-new.
func RecordPlacementExport(ctx workflow.Context, msg contract.PlacementExported, carry *contract.Carry) (contract.Status, error) {
	return run(ctx, placementRecord{msg: msg}, carry)
}

// RecordScanResult writes one finished scan's result to TCS.
func RecordScanResult(ctx workflow.Context, msg contract.ScanCompleted, carry *contract.Carry) (contract.Status, error) {
	return run(ctx, scanRecord{msg: msg}, carry)
}

// record is what differs between the two kinds beyond their names (those are in contract.Kinds).
type record interface {
	kind() contract.Kind
	recordID() string
	summary() string
	input() any
	deadLetter(dl contract.DeadLetter) contract.DeadLetter
	// corrected validates a corrected message of this same record (a retry's record).
	corrected(raw json.RawMessage) (record, error)
}

type placementRecord struct{ msg contract.PlacementExported }

func (r placementRecord) kind() contract.Kind { return contract.KindPlacement }
func (r placementRecord) recordID() string    { return r.msg.RecordID() }
func (r placementRecord) summary() string     { return r.msg.Summary() }
func (r placementRecord) input() any          { return r.msg }
func (r placementRecord) deadLetter(dl contract.DeadLetter) contract.DeadLetter {
	dl.Placement = &contract.PlacementRef{PlacementID: r.msg.PlacementID, Filename: r.msg.Filename}
	return dl
}
func (r placementRecord) corrected(raw json.RawMessage) (record, error) {
	m, err := contract.DecodePlacement(raw)
	if err != nil {
		return nil, err
	}
	if m.PlacementID != r.msg.PlacementID || m.Filename != r.msg.Filename {
		return nil, fmt.Errorf("it names placement %d file %q, not this record (placement %d file %q)",
			m.PlacementID, m.Filename, r.msg.PlacementID, r.msg.Filename)
	}
	return placementRecord{msg: m}, nil
}

type scanRecord struct{ msg contract.ScanCompleted }

func (r scanRecord) kind() contract.Kind { return contract.KindScan }
func (r scanRecord) recordID() string    { return r.msg.RecordID() }
func (r scanRecord) summary() string     { return r.msg.Summary() }
func (r scanRecord) input() any          { return r.msg }
func (r scanRecord) deadLetter(dl contract.DeadLetter) contract.DeadLetter {
	dl.Scan = &contract.ScanRef{ScanID: r.msg.ScanID, Result: r.msg.Result}
	return dl
}
func (r scanRecord) corrected(raw json.RawMessage) (record, error) {
	m, err := contract.DecodeScan(raw)
	if err != nil {
		return nil, err
	}
	if m.ScanID != r.msg.ScanID {
		return nil, fmt.Errorf("it names scan %s, not this record (scan %s)", m.ScanID, r.msg.ScanID)
	}
	return scanRecord{msg: m}, nil
}

// decision is an operator's signal acted on while the record is a dead letter.
type decision struct {
	signal  string
	payload contract.SignalPayload
	// record is the corrected message a retry carries (nil: the same one again).
	record record
}

// recorder is one run's state.
type recorder struct {
	rec        record
	log        log.Logger
	status     contract.Status
	settings   contract.RetrySettings
	budgetLeft time.Duration
	pending    *decision
	// acted holds the request IDs acted on (the latest maxActed), carried across continue-as-new.
	acted []string
	// poison is why the message is invalid (from the starter); it is dead-lettered, never written,
	// until a retry brings a corrected record.
	poison, poisonGroup string
	// failure is the group of the last dead-lettering (WritebackFailure).
	failure string
	// wakes counts SignalTCSAvailable: a wait for TCS ends when it moves past the count taken
	// before the refused call (a wake that arrives while the call returns is not lost).
	wakes int
	// fresh is true when an Updating phase begins (start, retry signal): its first attempt takes
	// the local-activity fast path, which also captures the settings.
	fresh bool
	// recovery is true in a phase that recovers a record (a retry of a dead letter, a redriven or
	// reconciled message): its TCS calls run at RecoveryPriority, behind fresh records, and
	// without the local fast path (a local activity has no priority).
	recovery bool
}

// errContinueAsNew says the update loop should hand over to a fresh run.
var errContinueAsNew = errors.New("continue as new")

func run(ctx workflow.Context, rec record, carry *contract.Carry) (contract.Status, error) {
	r := &recorder{rec: rec, log: log.With(workflow.GetLogger(ctx), "kind", rec.kind(), "recordId", rec.recordID())}
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
		r.poison, r.poisonGroup, r.recovery, r.acted = carry.Poison, carry.PoisonGroup, carry.Recovery, carry.Acted
	} else if workflow.GetInfo(ctx).Priority.PriorityKey >= contract.RecoveryPriority {
		r.recovery = true
	}
	workflow.SetCurrentDetails(ctx, r.rec.summary())
	return r.publishState(ctx)
}

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

// listenForSignals takes the operator's retry and abandon, as signals or as Updates, and the
// workers' tcs-available. A request is acted on only while the record is a dead letter; otherwise
// it is refused (an Update hears why, a signal's refusal is logged), so a signal sent while
// Updating is not replayed later by surprise.
func (r *recorder) listenForSignals(ctx workflow.Context) error {
	for _, name := range []string{contract.UpdateRetry, contract.UpdateAbandon} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, name,
			func(_ workflow.Context, p contract.SignalPayload) (contract.Accepted, error) {
				d, err := r.decide(name, p)
				if err != nil {
					return contract.Accepted{}, err
				}
				return r.accept(d), nil
			},
			workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, p contract.SignalPayload) error {
				_, err := r.decide(name, p)
				return err
			}})
		if err != nil {
			return err
		}
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		for _, name := range []string{contract.SignalRetry, contract.SignalAbandon} {
			sel.AddReceive(workflow.GetSignalChannel(ctx, name), func(c workflow.ReceiveChannel, _ bool) {
				var p contract.SignalPayload
				if !receive(ctx, c, &p, r.log) {
					return
				}
				d, err := r.decide(name, p)
				if err != nil {
					r.log.Warn("signal ignored: "+err.Error(), "signal", name, "reason", p.Reason, "by", p.By, "requestId", p.RequestID)
					return
				}
				r.accept(d)
			})
		}
		sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalTCSAvailable), func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			r.wakes++
		})
		for {
			sel.Select(ctx)
		}
	})
	return nil
}

// decide says what the record does with an operator's request: the decision to act on, or a
// refusal (an ApplicationError whose type is a contract.Refused* code). It changes nothing, so an
// Update's validator and its handler both ask it.
func (r *recorder) decide(name string, p contract.SignalPayload) (*decision, error) {
	refuse := func(code, why string) (*decision, error) {
		return nil, temporal.NewApplicationErrorWithOptions(why, code, temporal.ApplicationErrorOptions{NonRetryable: true})
	}
	if p.RequestID != "" && slices.Contains(r.acted, p.RequestID) {
		return refuse(contract.RefusedActedOn, "already acted on request "+p.RequestID)
	}
	if r.status.State != contract.StateDeadLettered || r.pending != nil {
		state := r.status.State
		if r.pending != nil {
			state = "acting on a " + r.pending.signal
		}
		return refuse(contract.RefusedNotParked, "the record is not a parked dead letter ("+state+")")
	}
	d := &decision{signal: name, payload: p}
	if name != contract.SignalRetry {
		return d, nil
	}
	if p.MaxRetries > 0 && r.status.Retries >= p.MaxRetries {
		return refuse(contract.RefusedMaxRetries, fmt.Sprintf("already retried %d times (--max-retries %d)", r.status.Retries, p.MaxRetries))
	}
	if len(p.Record) == 0 {
		return d, nil
	}
	next, err := r.rec.corrected(p.Record)
	if err != nil {
		return refuse(contract.RefusedInvalidRecord, "its corrected record is not usable: "+err.Error())
	}
	switch {
	case r.poison != "" || !sameMessage(next, r.rec):
		d.record = next
	case p.Offer:
		// A byte-identical duplicate (e.g. redelivered on the queue) is not a correction.
		return refuse(contract.RefusedSameRecord, "the corrected record is the record as it is")
	default:
		// An operator sent the record as it is: a plain retry.
	}
	return d, nil
}

// accept makes d the record's next step and remembers its request.
func (r *recorder) accept(d *decision) contract.Accepted {
	p := d.payload
	r.log.Info("operator request accepted", "signal", d.signal, "reason", p.Reason, "by", p.By, "job", p.Job,
		"requestId", p.RequestID, "corrected", d.record != nil)
	r.pending = d
	if p.RequestID != "" {
		r.acted = append(r.acted, p.RequestID)
		if len(r.acted) > maxActed {
			r.acted = r.acted[len(r.acted)-maxActed:]
		}
	}
	return contract.Accepted{Signal: d.signal, DeadLetteredAt: r.status.DeadLetteredAt, Retries: r.status.Retries,
		Corrected: d.record != nil}
}

// maxActed bounds the request IDs a record remembers: far more than the requests one record sees.
const maxActed = 100

func (r *recorder) run(ctx workflow.Context) (contract.Status, error) {
	for {
		if r.status.State == contract.StateUpdating {
			var cause, group string
			var err error
			if r.poison != "" {
				// Never written: the message is invalid. It becomes a dead letter of its record.
				cause, group = r.poison, r.poisonGroup
				if r.settings == (contract.RetrySettings{}) {
					err = r.captureSettings(ctx)
				}
			} else {
				cause, group, err = r.update(ctx)
			}
			if errors.Is(err, errContinueAsNew) {
				return r.status, workflow.NewContinueAsNewError(ctx, r.rec.kind().Spec().WorkflowType, r.rec.input(), &contract.Carry{Status: r.status, Settings: r.settings, BudgetLeft: r.budgetLeft,
					Recovery: r.recovery, Acted: r.acted})
			}
			if err != nil {
				return r.status, err
			}
			if cause != "" && group == contract.GroupBudgetSpent {
				// Writes whose answers were lost may have landed: look before marking it errored.
				written, err := r.checkWritten(ctx)
				if err != nil {
					// TCS does not answer this record's read either: dead-letter it (the mark is
					// retried until it lands).
					r.log.Warn("could not look in TCS before dead-lettering", "error", err.Error())
				}
				if written {
					r.log.Info("the retry budget ran out, but TCS holds the record: completed, not dead-lettered")
					cause = ""
				}
			}
			if cause == "" {
				return r.status, r.setState(ctx, contract.StateCompleted)
			}
			held, err := r.deadLetter(ctx, cause, group)
			if err != nil {
				return r.status, err
			}
			if held {
				return r.status, r.setState(ctx, contract.StateCompleted)
			}
		}

		// Parked: wait for an operator, up to the parking period.
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
				return r.status, err
			}
		}
		if !got {
			// Nothing more will happen to it: say so loudly, with the record, and count it.
			r.log.Error("dead letter expired: its parking period ended without a retry or abandon; it closes as DeadLettered "+
				"and only an operator can write it now (reconcile, or a new message)",
				"workflowId", workflow.GetInfo(ctx).WorkflowExecution.ID, "lastError", r.status.LastError,
				"deadLetteredAt", r.status.DeadLetteredAt, "parkingPeriod", r.settings.ParkingPeriod.String())
			workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": string(r.rec.kind())}).Counter(contract.MetricDeadLettersExpired).Inc(1)
			return r.status, nil
		}
		d := r.pending
		r.pending = nil
		if d.signal == contract.SignalAbandon {
			return r.status, r.setState(ctx, contract.StateAbandoned)
		}
		r.status.Retries++
		workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": string(r.rec.kind())}).Counter(contract.MetricManualRetries).Inc(1)
		if d.record != nil {
			r.rec, r.poison, r.poisonGroup = d.record, "", ""
		}
		r.fresh = true
		r.recovery = true
		if err := r.setState(ctx, contract.StateUpdating); err != nil {
			return r.status, err
		}
	}
}

// firstAttempt runs the phase's first TCS update as a local activity, capturing the settings.
// done is true when it settled the phase (success, or a permanent answer given in cause).
func (r *recorder) firstAttempt(ctx workflow.Context) (done bool, cause, group string, err error) {
	r.fresh = false
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		// Two TCS requests at most; anything slower falls back to the regular activity.
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		Summary:             "first attempt: write " + r.rec.summary(),
	})
	var fa contract.FirstAttempt
	seen := r.wakes
	if lerr := workflow.ExecuteLocalActivity(lctx, r.rec.kind().Spec().FirstAttempt, r.rec.input()).Get(ctx, &fa); lerr != nil {
		// The local activity itself failed (timeout, worker trouble): capture the settings the
		// regular way and let the activity's retry policy take over.
		r.status.Attempts++
		r.status.LastError = describe(lerr).message
		if err := r.captureSettings(ctx); err != nil {
			return false, "", "", err
		}
		return false, "", "", r.wait(ctx, r.settings.InitialInterval, "first attempt failed: waiting before retrying")
	}
	r.settings, r.budgetLeft = fa.Settings, fa.Settings.Budget
	r.status.Attempts++
	switch fa.ErrType {
	case "":
		return true, "", "", nil
	case contract.ErrPermanent:
		r.status.LastError = fa.Message
		return true, fa.Message, contract.TCSGroup(fa.Status), nil
	case contract.ErrOutage:
		r.status.Attempts-- // not sent: not an attempt
		r.status.LastError = fa.Message
		if fa.Queued {
			// The cap's queue was longer than the fast path waits: the activity waits its turn.
			return false, "", "", nil
		}
		return false, "", "", r.awaitTCS(ctx, r.settings.InitialInterval, seen)
	default:
		r.status.LastError = fa.Message
		return false, "", "", r.wait(ctx, max(r.settings.InitialInterval, fa.RetryAfter), "first attempt failed: waiting before retrying")
	}
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

// update writes the record to TCS. It returns "" on success, or why the record must be
// dead-lettered and the failure group of that cause.
func (r *recorder) update(ctx workflow.Context) (cause, group string, err error) {
	if r.fresh && r.recovery {
		r.fresh = false
		if err := r.captureSettings(ctx); err != nil {
			return "", "", err
		}
	}
	if r.fresh {
		done, cause, group, err := r.firstAttempt(ctx)
		if err != nil || done {
			return cause, group, err
		}
	}
	configFailures, outageWaits := 0, 0
	for {
		if r.budgetLeft <= 0 {
			return fmt.Sprintf("retry budget of %s spent; last error: %s", r.settings.Budget, r.status.LastError), contract.GroupBudgetSpent, nil
		}
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			// The budget: how long transient failures may go on. 401/403 do not spend it (see below).
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
			Summary:  "write " + r.rec.summary(),
			Priority: r.priority(),
		})
		start, seen := workflow.Now(ctx), r.wakes
		var res contract.UpdateResult
		err := workflow.ExecuteActivity(actx, r.rec.kind().Spec().Update, r.rec.input()).Get(ctx, &res)
		elapsed := workflow.Now(ctx).Sub(start)
		r.budgetLeft -= elapsed
		if err == nil {
			r.status.Attempts += int(max(res.Attempt, 1))
			return "", "", nil
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
			return f.message, contract.TCSGroup(f.status), nil
		case contract.ErrOutage:
			// Not sent: TCS fails for everyone (outage mode), an operator holds requests, or the
			// cap's queue is long. A refusal takes no time, and the wait below is outside the
			// budget's clock; a worker wakes us when TCS takes requests again.
			r.status.Attempts-- // the refused call was not an attempt
			// The call ended refused: TCS fails for everyone, an operator holds it, or the cap's
			// queue was too long. The time from the refused attempt's start — waiting for a worker
			// behind everyone's held-back records, any attempt that went out as a probe — is not this
			// record's; its own attempts and backoff before it are.
			r.budgetLeft += max(elapsed-r.ownBefore(f), 0)
			wait := min(contract.Backoff(r.settings, outageWaits), contract.OutageWaitMax)
			if f.queuedAtCap {
				wait = r.settings.InitialInterval // nothing to wait for but the queue
			} else {
				outageWaits++
			}
			if err := r.awaitTCS(ctx, wait, seen); err != nil {
				return "", "", err
			}
			if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				return "", "", errContinueAsNew
			}
		case contract.ErrConfig:
			// Our credentials are wrong, not the record: wait and try again without end. The wait is
			// not charged to the budget; the worker counts these answers in a metric that alerts.
			wait := contract.Backoff(r.settings, configFailures)
			configFailures++
			r.log.Error("TCS refused our credentials; waiting before trying again", "error", f.message, "wait", wait)
			if err := r.wait(ctx, wait, "TCS refused credentials (401/403): waiting"); err != nil {
				return "", "", err
			}
			if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				return "", "", errContinueAsNew
			}
		default:
			// Transient failures until the budget ran out (the retry policy gave up). The activity's
			// clock also ran while a retry waited in the queue for a worker (a backlog behind the
			// cap, after an outage); that time is the backlog's, not the record's: give it back.
			r.budgetLeft = 0
			if waited := contract.WaitedBeyond(r.settings, r.attemptTimeout(), f.attempts, f.took, f.delay, f.started, elapsed); waited > time.Second {
				r.budgetLeft = waited
				r.log.Info("the retry budget ran out while a retry waited for a worker: that wait is not the record's",
					"waited", waited, "attempts", f.attempts)
			}
		}
	}
}

// ownBefore is the record's own time before a refused attempt: the activity's time before that
// attempt started, at most what its earlier attempts and the backoff between them can have taken
// (their waits for a worker or at the cap are not the record's).
func (r *recorder) ownBefore(f failure) time.Duration {
	return min(f.before, contract.MostOwn(r.settings, r.attemptTimeout(), f.attempts-1))
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
		Summary: summary + r.rec.summary(),
	})
}

// checkWritten reads TCS for the record: a few attempts, since the record's budget is spent.
func (r *recorder) checkWritten(ctx workflow.Context) (bool, error) {
	actx := r.tcsReadOrMark(ctx, 3, "look in TCS before dead-lettering: ")
	for waits := 0; ; waits++ {
		var written bool
		seen := r.wakes
		err := workflow.ExecuteActivity(actx, r.rec.kind().Spec().Check, r.rec.input()).Get(ctx, &written)
		if !refusedByGovernor(err) {
			return written, err
		}
		// Not sent (outage mode, hold): wait for TCS and look then, rather than dead-letter blind.
		if err := r.awaitTCS(ctx, min(contract.Backoff(r.settings, waits), contract.OutageWaitMax), seen); err != nil {
			return false, err
		}
	}
}

// refusedByGovernor reports an activity failure whose last attempt was not sent to TCS.
func refusedByGovernor(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && (appErr.Type() == contract.ErrOutage || appErr.Type() == "refused")
}

// deadLetter marks the record errored in TCS and parks it. held is true when the mark found that TCS
// holds the record as written (a write whose answer was lost landed, and the look before could not
// tell): the record then completes, with nothing marked and no CRITICAL line.
func (r *recorder) deadLetter(ctx workflow.Context, cause, group string) (held bool, err error) {
	now := workflow.Now(ctx).UTC()
	dl := r.rec.deadLetter(contract.DeadLetter{
		Kind: string(r.rec.kind()), RecordID: r.rec.recordID(), Group: group, Attempts: r.status.Attempts,
		LastError: cause, DeadLetteredAt: now,
	})
	// A dead letter must not be lost either: the mark is retried until it lands.
	actx := r.tcsReadOrMark(ctx, 0, "mark errored in TCS: ")
	var res contract.MarkResult
	if err := workflow.ExecuteActivity(actx, r.rec.kind().Spec().Mark, dl).Get(ctx, &res); err != nil {
		return false, err
	}
	// Added after 1.0: a run whose mark found the record held took the dead-letter path before. May
	// retire once no run from before this change can still be open: the parking period (30 days)
	// plus a week after the first release with it.
	if res.Held && workflow.GetVersion(ctx, "held-at-dead-letter", workflow.DefaultVersion, 1) == 1 {
		r.log.Info("the record was to be dead-lettered, but TCS holds it as written: completed", "note", res.Note)
		return true, nil
	}
	r.status.LastError = cause
	r.failure = group
	r.status.DeadLetteredAt = now.Format(time.RFC3339Nano)
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": string(r.rec.kind())}).Counter(contract.MetricDeadLetters).Inc(1)
	return false, r.setState(ctx, contract.StateDeadLettered)
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
	want := []keyword{{contract.KindKey, string(r.rec.kind())}, {contract.RecordIDKey, r.rec.recordID()}, {contract.StateKey, r.status.State}}
	if r.failure != "" {
		want = append(want, keyword{contract.FailureKey, r.failure})
	}
	for _, w := range want {
		if v, ok := current.GetKeyword(w.key); !ok || v != w.value {
			updates = append(updates, w.key.ValueSet(w.value))
		}
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** — %s", r.status.State, r.rec.summary()))
	if len(updates) == 0 {
		return nil
	}
	return workflow.UpsertTypedSearchAttributes(ctx, updates...)
}

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

// sameMessage reports whether two records carry the same message. (json.Marshal is deterministic;
// the checker sees reflection deep inside it.)
//
//workflowcheck:ignore
func sameMessage(a, b record) bool {
	x, _ := json.Marshal(a.input())
	y, _ := json.Marshal(b.input())
	return string(x) == string(y)
}
