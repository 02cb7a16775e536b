// Package activities holds the activities that write to TCS, with their dependencies.
// They turn TCS answers into Temporal errors of the failure classes (docs/contract.md, Failure classes).
package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/tcs"
	"github.com/tis-writeback/writeback/tcs/guard"
)

// Activities writes records to TCS.
type Activities struct {
	TCS      *tcs.Client
	Log      *slog.Logger
	Settings contract.RetrySettings
	// KeyHonoured says TCS honours Idempotency-Key (the extension in docs/contract.md, The TCS API
	// writeback uses): the read before
	// each write is then skipped.
	KeyHonoured bool
}

// New builds the activities.
func New(client *tcs.Client, log *slog.Logger, settings contract.RetrySettings) *Activities {
	return &Activities{TCS: client, Log: log, Settings: settings}
}

// CurrentRetrySettings returns the worker's retry settings; run as a local activity so that the
// value is recorded in the workflow's history.
func (a *Activities) CurrentRetrySettings(ctx context.Context) (contract.RetrySettings, error) {
	return a.Settings, nil
}

// probePlacementID is a well-formed placement ID no record has (the largest there is): TCS checks the
// token, then answers 404; the probe's read of it changes nothing.
const probePlacementID = math.MaxInt64

// ProbeTCS reads a placement no record has, through the same client, cap and hold as every record:
// any answer from TCS (404, or a placement) proves this worker reaches TCS with a token TCS accepts.
// It writes nothing. It fails at once (never retried) saying what stopped it: the credentials, the
// hold or outage mode, or TCS not answering.
func (a *Activities) ProbeTCS(ctx context.Context) (contract.ProbeResult, error) {
	host, _ := os.Hostname()
	res := contract.ProbeResult{Worker: host}
	_, err := a.TCS.GetPlacement(ctx, probePlacementID)
	switch tcs.Classify(err) {
	case tcs.OK, tcs.Permanent:
		res.Answer = "TCS answered"
		if s := tcs.StatusOf(err); s != 0 {
			res.Answer += fmt.Sprintf(" %d for placement %d (a placement no record has): reachable, the token accepted", s, probePlacementID)
		}
		return res, nil
	case tcs.Config:
		return res, temporal.NewNonRetryableApplicationError("TCS refuses the worker's token: "+err.Error(), "tcs-credentials", nil)
	case tcs.Refused:
		return res, temporal.NewNonRetryableApplicationError("the worker sent TCS nothing: "+err.Error(), "tcs-refused", nil)
	default:
		return res, temporal.NewNonRetryableApplicationError("TCS does not answer the worker: "+err.Error(), "tcs-unreachable", nil)
	}
}

// UpdatePlacement writes one EXPORTED event, exactly once. It sends an Idempotency-Key that is
// the same for every attempt and retry of this record in this run, so a TCS with that extension
// makes one row even when an earlier attempt's write commits after this one's read. For a TCS
// without it, it also reads the placement first and writes only if no EXPORTED event for this file
// exists (TCS inserts a row on every POST, and an earlier answer may have been lost after the
// write). With KeyHonoured (TCS_IDEMPOTENCY_KEY_HONOURED) the read is skipped: one request.
func (a *Activities) UpdatePlacement(ctx context.Context, msg contract.PlacementExported) (contract.UpdateResult, error) {
	ctx = caller(ctx)
	info := activity.GetInfo(ctx)
	attempt := info.Attempt
	if !a.KeyHonoured {
		p, err := a.TCS.GetPlacement(ctx, msg.PlacementID)
		if err != nil {
			return contract.UpdateResult{}, updateError(ctx, err)
		}
		if exported(p, msg.Filename) {
			return contract.UpdateResult{Attempt: attempt, AlreadyWritten: true}, nil
		}
	}
	err := a.TCS.MarkESRExported(ctx, tcs.ESRExport{
		PlacementID: msg.PlacementID, PositionNumber: msg.PositionNumber, PositionID: msg.PositionID,
		Filename: msg.Filename, ExportedAt: msg.ExportedAt,
	}, IdempotencyKey(FirstRunID(ctx), msg))
	if err != nil {
		return contract.UpdateResult{}, updateError(ctx, err)
	}
	return contract.UpdateResult{Attempt: attempt}, nil
}

// caller names the workflow behind the TCS requests made with ctx: the guard counts distinct
// callers to tell an outage from one record's trouble, and wakes refused ones when TCS is back.
// Recovery traffic (a retried dead letter, a redriven or reconciled record) waits for the cap
// behind fresh records.
func caller(ctx context.Context) context.Context {
	info := activity.GetInfo(ctx)
	ctx = guard.WithCaller(ctx, info.WorkflowExecution.ID)
	if info.Priority.PriorityKey >= contract.RecoveryPriority {
		ctx = guard.AsRecovery(ctx)
	}
	// What of the attempt's time was the cap's queue is not the record's (updateError's Took), which
	// is measured on this worker's clock alone.
	ctx = context.WithValue(ctx, startedKey{}, time.Now())
	return tcs.WithQueueMeter(ctx, new(time.Duration))
}

// IdempotencyKey is the Idempotency-Key of a placement's write: stable across every attempt and
// retry of the same record content in one chain of runs (continue-as-new included: runID is the
// chain's first run); a corrected record, or a new chain (reconcile: its write did not stick), gets
// its own.
func IdempotencyKey(runID string, msg contract.PlacementExported) string {
	b, _ := json.Marshal(msg)
	sum := sha256.Sum256(append([]byte(runID+"\n"), b...))
	return "writeback-" + hex.EncodeToString(sum[:16])
}

func exported(p tcs.Placement, filename string) bool {
	for _, ev := range p.ESREvents {
		if ev.Status == tcs.StatusExported && ev.Filename == filename {
			return true
		}
	}
	return false
}

// CheckPlacementWritten reads TCS for the placement's EXPORTED event: the look before a record
// whose budget ran out is dead-lettered (its writes may have landed while their answers were lost).
// A 404 means not written; other failures are retried.
func (a *Activities) CheckPlacementWritten(ctx context.Context, msg contract.PlacementExported) (bool, error) {
	ctx = caller(ctx)
	p, err := a.TCS.GetPlacement(ctx, msg.PlacementID)
	if err != nil {
		return false, checkError(err)
	}
	return exported(p, msg.Filename), nil
}

// CheckScanWritten reads TCS for the scan: written when it is COMPLETED with this result.
func (a *Activities) CheckScanWritten(ctx context.Context, msg contract.ScanCompleted) (bool, error) {
	ctx = caller(ctx)
	sc, err := a.TCS.GetScan(ctx, msg.ScanID)
	if err != nil {
		return false, checkError(err)
	}
	return sc.Status == tcs.ScanCompleted && sc.Result == msg.Result, nil
}

// checkError: a 404 means "not written" (nil); a request the TCS guard did not send returns at once
// as ErrOutage (the workflow waits for TCS and looks again); the rest is retried.
func checkError(err error) error {
	switch {
	case tcs.IsNotFound(err):
		return nil
	case tcs.Classify(err) == tcs.Refused:
		return temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrOutage, nil)
	}
	return temporal.NewApplicationError(err.Error(), errorType(err))
}

// errorType is the ApplicationError type a failed TCS call reaches the workflow as: its class, and
// for a request the TCS guard did not send, contract.ErrOutage (the one "not sent" type workflows know).
func errorType(err error) string {
	if c := tcs.Classify(err); c != tcs.Refused {
		return string(c)
	}
	return contract.ErrOutage
}

// FirstPlacementAttempt tries UpdatePlacement once and reports the outcome with the settings.
func (a *Activities) FirstPlacementAttempt(ctx context.Context, msg contract.PlacementExported) (contract.FirstAttempt, error) {
	res, err := a.UpdatePlacement(ctx, msg)
	return a.firstAttempt(res, err), nil
}

// FirstScanAttempt tries UpdateScan once and reports the outcome with the settings.
func (a *Activities) FirstScanAttempt(ctx context.Context, msg contract.ScanCompleted) (contract.FirstAttempt, error) {
	res, err := a.UpdateScan(ctx, msg)
	return a.firstAttempt(res, err), nil
}

func (a *Activities) firstAttempt(res contract.UpdateResult, err error) contract.FirstAttempt {
	fa := contract.FirstAttempt{Settings: a.Settings, Result: res}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		fa.ErrType, fa.Message, fa.RetryAfter = appErr.Type(), appErr.Message(), appErr.NextRetryDelay()
		var d contract.FailureDetails
		if appErr.HasDetails() && appErr.Details(&d) == nil {
			fa.Status, fa.Queued = d.Status, d.Queued
		}
	} else if err != nil {
		fa.ErrType, fa.Message = contract.ErrTransient, err.Error()
	}
	return fa
}

// UpdateScan writes a scan's result; PUT is idempotent in TCS, so no check is needed.
func (a *Activities) UpdateScan(ctx context.Context, msg contract.ScanCompleted) (contract.UpdateResult, error) {
	ctx = caller(ctx)
	attempt := activity.GetInfo(ctx).Attempt
	completed := msg.CompletedAt
	err := a.TCS.PutScan(ctx, msg.ScanID, tcs.ScanUpdate{
		Status: tcs.ScanCompleted, Result: msg.Result, FileName: msg.FileName, CompletedAt: &completed,
	})
	if err != nil {
		return contract.UpdateResult{}, updateError(ctx, err)
	}
	return contract.UpdateResult{Attempt: attempt}, nil
}

type startedKey struct{}

// took is how long the attempt of ctx (see caller) has run on this worker, less its wait for the cap.
func took(ctx context.Context) time.Duration {
	started, ok := ctx.Value(startedKey{}).(time.Time)
	if !ok {
		started = activity.GetInfo(ctx).StartedTime
	}
	return max(time.Since(started)-tcs.QueueWaited(ctx), 0)
}

// updateError turns a TCS failure into the Temporal error of its class.
func updateError(ctx context.Context, err error) error {
	info := activity.GetInfo(ctx)
	details := contract.FailureDetails{Attempt: info.Attempt, Status: tcs.StatusOf(err), Took: took(ctx),
		Queued: tcs.IsQueued(err)}
	if info.Attempt > 1 && !info.IsLocalActivity {
		details.Before = max(info.StartedTime.Sub(info.ScheduledTime), 0) // both the server's clock
	}
	switch tcs.Classify(err) {
	case tcs.Permanent:
		return temporal.NewApplicationErrorWithOptions(err.Error(), contract.ErrPermanent,
			temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{details}})
	case tcs.Config:
		return temporal.NewApplicationErrorWithOptions(err.Error(), contract.ErrConfig,
			temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{details}})
	case tcs.Refused:
		return temporal.NewApplicationErrorWithOptions(err.Error(), contract.ErrOutage,
			temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{details}})
	default:
		opts := temporal.ApplicationErrorOptions{Details: []any{details}}
		var te *tcs.Error
		if errors.As(err, &te) && te.RetryAfter > 0 {
			opts.NextRetryDelay = te.RetryAfter // honour Retry-After on 429/503
		}
		return temporal.NewApplicationErrorWithOptions(err.Error(), contract.ErrTransient, opts)
	}
}

// MarkPlacementFailed records a FAILED event for a dead-lettered placement export, then logs the
// CRITICAL line. It is retried while TCS is down; a 404 (TCS does not know the placement) is
// "nothing to mark".
func (a *Activities) MarkPlacementFailed(ctx context.Context, dl contract.DeadLetter) (contract.MarkResult, error) {
	ctx = caller(ctx)
	if dl.Placement == nil {
		return contract.MarkResult{}, temporal.NewNonRetryableApplicationError("no placement in dead letter", "BadInput", nil)
	}
	ref := *dl.Placement
	res, err := a.markPlacement(ctx, ref, dl)
	if err != nil || res.Held {
		return res, err
	}
	a.critical(ctx, dl, res)
	return res, nil
}

func (a *Activities) markPlacement(ctx context.Context, ref contract.PlacementRef, dl contract.DeadLetter) (contract.MarkResult, error) {
	// First the truth: if TCS holds this file's EXPORTED event (a write whose answer was lost
	// landed), the record is not a dead letter. On a retried attempt an earlier one may have written
	// the mark without hearing back: a FAILED event for this file means TCS shows the cross already
	// (TCS does not promise an order of events, so any FAILED event counts).
	p, err := a.TCS.GetPlacement(ctx, ref.PlacementID)
	if err != nil {
		return a.markOutcome(err)
	}
	if exported(p, ref.Filename) && !contract.IsPoisonGroup(dl.Group) {
		return contract.MarkResult{Held: true, Note: "TCS holds the EXPORTED event for " + ref.Filename + ": not marked"}, nil
	}
	if activity.GetInfo(ctx).Attempt > 1 {
		for _, ev := range p.ESREvents {
			if ev.Filename == ref.Filename && ev.Status == tcs.StatusFailed {
				return contract.MarkResult{Marked: true, Note: "already marked"}, nil
			}
		}
	}
	err = a.TCS.MarkESRExportFailed(ctx, ref.PlacementID, tcs.ESRExportFailure{
		Filename: ref.Filename, Reason: reasonText(dl), FailedAt: dl.DeadLetteredAt,
	})
	if err != nil {
		return a.markOutcome(err)
	}
	return contract.MarkResult{Marked: true}, nil
}

// MarkScanErrored sets a dead-lettered scan to ERRORED, then logs the CRITICAL line.
func (a *Activities) MarkScanErrored(ctx context.Context, dl contract.DeadLetter) (contract.MarkResult, error) {
	ctx = caller(ctx)
	if dl.Scan == nil {
		return contract.MarkResult{}, temporal.NewNonRetryableApplicationError("no scan in dead letter", "BadInput", nil)
	}
	// A COMPLETED scan is never overwritten with ERRORED: TCS holds a result. When it is this record's
	// result (a write whose answer was lost landed), the record is not a dead letter at all.
	current, err := a.TCS.GetScan(ctx, dl.Scan.ScanID)
	if err == nil && current.Status == tcs.ScanCompleted {
		if dl.Scan.Result != "" && current.Result == dl.Scan.Result && !contract.IsPoisonGroup(dl.Group) {
			return contract.MarkResult{Held: true, Note: "TCS holds the scan COMPLETED with this result (" + current.Result + "): not marked"}, nil
		}
		res := contract.MarkResult{Marked: false, Note: "TCS holds the scan COMPLETED (" + current.Result + "): not overwritten with ERRORED"}
		a.critical(ctx, dl, res)
		return res, nil
	}
	if err != nil && !tcs.IsNotFound(err) {
		return a.markOutcome(err)
	}
	failed := dl.DeadLetteredAt
	err = a.TCS.PutScan(ctx, dl.Scan.ScanID, tcs.ScanUpdate{Status: tcs.ScanErrored, Reason: reasonText(dl), FailedAt: &failed})
	res := contract.MarkResult{Marked: true}
	if err != nil {
		if res, err = a.markOutcome(err); err != nil {
			return res, err
		}
	}
	a.critical(ctx, dl, res)
	return res, nil
}

// markOutcome decides what a failed mark means: a permanent answer (404 unknown record, or TCS
// rejecting the mark) is logged and the dead-lettering goes on; anything else is retried, because
// a dead letter must not be lost either.
func (a *Activities) markOutcome(err error) (contract.MarkResult, error) {
	if tcs.Classify(err) == tcs.Permanent {
		note := "TCS rejected the mark: " + err.Error()
		if tcs.IsNotFound(err) {
			note = "TCS does not know the record, nothing to mark: " + err.Error()
		}
		return contract.MarkResult{Marked: false, Note: note}, nil
	}
	return contract.MarkResult{}, temporal.NewApplicationError(err.Error(), errorType(err))
}

// critical emits the one CRITICAL line of a dead-lettering. It runs only on the attempt whose
// mark landed, so retries of the mark do not repeat it.
func (a *Activities) critical(ctx context.Context, dl contract.DeadLetter, res contract.MarkResult) {
	info := activity.GetInfo(ctx)
	a.Log.Log(ctx, contract.LevelCritical, "record dead-lettered: it could not be written to TCS",
		"kind", dl.Kind,
		"recordId", dl.RecordID,
		"group", dl.Group,
		"workflowId", info.WorkflowExecution.ID,
		"runId", info.WorkflowExecution.RunID,
		"attempts", dl.Attempts,
		"lastError", dl.LastError,
		"deadLetteredAt", dl.DeadLetteredAt.Format(time.RFC3339),
		"markedInTCS", res.Marked,
		"markNote", res.Note,
	)
}

func reasonText(dl contract.DeadLetter) string {
	return fmt.Sprintf("writeback dead-lettered after %d attempt(s): %s", dl.Attempts, dl.LastError)
}
