package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/operate"
)

// Entry is one line of a record's timeline.
type Entry struct {
	Time   time.Time `json:"time"`
	What   string    `json:"what"` // message, attempt, written, dead-lettered, operator, state, closed
	Detail string    `json:"detail"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Job    string    `json:"job,omitempty"`
	Group  string    `json:"group,omitempty"`
}

// Timeline is a record's story read from its Temporal history.
type Timeline struct {
	WorkflowID string          `json:"workflowId"`
	Entries    []Entry         `json:"entries"`
	Now        contract.Status `json:"now"`
}

var dc = converter.GetDefaultDataConverter()

// maxRuns bounds how far History follows a chain of runs back (each continue-as-new is one).
const maxRuns = 100

// History reads the timeline of a record's workflow — every run of its chain, from the first (a
// long 401 spell continues as new) — the message, each attempt to write it with its error, each
// dead-lettering with its group and reason, each operator action (who, why, job, correction), and
// the state now.
func History(ctx context.Context, c client.Client, id string) (Timeline, error) {
	tl := Timeline{WorkflowID: id}
	var runs [][]Entry // latest first
	runID := ""
	for range maxRuns {
		entries, previous, err := runEntries(ctx, c, id, runID)
		var nf *serviceerror.NotFound
		if runID != "" && errors.As(err, &nf) {
			// An earlier run closed at its continue-as-new; past the namespace's retention it is gone.
			runs = append(runs, []Entry{{What: "state", Detail: "earlier runs of this record are past Temporal's retention"}})
			break
		}
		if err != nil {
			return tl, err
		}
		runs = append(runs, entries)
		if previous == "" {
			break
		}
		runID = previous
	}
	for i := len(runs) - 1; i >= 0; i-- {
		tl.Entries = append(tl.Entries, runs[i]...)
	}
	if st, err := operate.QueryState(ctx, c, id); err == nil {
		tl.Now = st
	}
	return tl, nil
}

// runEntries reads one run; previous is the run it continued from ("" for a chain's first run).
func runEntries(ctx context.Context, c client.Client, id, runID string) (entries []Entry, previous string, err error) {
	scheduled := map[int64]string{} // scheduled event ID → activity type
	iter := c.GetWorkflowHistory(ctx, id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return nil, "", fmt.Errorf("history of %s: %w", id, err)
		}
		if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil && a.GetContinuedExecutionRunId() != "" {
			previous = a.GetContinuedExecutionRunId()
			continue // its input is the state handed over, not a new message
		}
		if e, ok := entryOf(ev, scheduled); ok {
			e.Time = ev.GetEventTime().AsTime().UTC()
			entries = append(entries, e)
		}
	}
	return entries, previous, nil
}

func entryOf(ev *historypb.HistoryEvent, scheduled map[int64]string) (Entry, bool) {
	switch {
	case ev.GetWorkflowExecutionStartedEventAttributes() != nil:
		a := ev.GetWorkflowExecutionStartedEventAttributes()
		in := a.GetInput().GetPayloads()
		e := Entry{What: "message"}
		if len(in) > 0 {
			e.Detail = string(in[0].GetData())
		}
		var origin string // a redriven or reconciled record says by whom and why
		if d := ev.GetUserMetadata().GetDetails(); d != nil && dc.FromPayload(d, &origin) == nil && origin != "" {
			e.Detail += " — " + origin
		}
		if len(in) > 1 {
			var carry contract.Carry
			if dc.FromPayload(in[1], &carry) == nil && carry.Poison != "" {
				e.Detail += " — poison: " + carry.Poison
				e.Group = carry.PoisonGroup
			}
		}
		return e, true
	case ev.GetMarkerRecordedEventAttributes() != nil:
		return firstAttempt(ev.GetMarkerRecordedEventAttributes().GetDetails())
	case ev.GetActivityTaskScheduledEventAttributes() != nil:
		a := ev.GetActivityTaskScheduledEventAttributes()
		scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		if t := a.GetActivityType().GetName(); t == contract.MarkPlacementFailedName || t == contract.MarkScanErroredName {
			var dl contract.DeadLetter
			if in := a.GetInput().GetPayloads(); len(in) > 0 && dc.FromPayload(in[0], &dl) == nil {
				return Entry{What: "dead-lettered", Group: dl.Group, Reason: dl.LastError,
					Detail: fmt.Sprintf("after %d attempt(s); marking it errored in TCS", dl.Attempts)}, true
			}
		}
	case ev.GetActivityTaskFailedEventAttributes() != nil:
		a := ev.GetActivityTaskFailedEventAttributes()
		t := scheduled[a.GetScheduledEventId()]
		if t == contract.UpdatePlacementName || t == contract.UpdateScanName {
			// One activity is one attempt; a run from before "own-retries" retried inside it.
			detail := t + " failed"
			if n := attemptOf(a.GetFailure().GetApplicationFailureInfo().GetDetails()); n > 1 {
				detail += fmt.Sprintf(" (its attempt %d)", n)
			}
			return Entry{What: "attempt", Detail: detail + ": " + a.GetFailure().GetMessage()}, true
		}
	case ev.GetActivityTaskTimedOutEventAttributes() != nil:
		a := ev.GetActivityTaskTimedOutEventAttributes()
		if t := scheduled[a.GetScheduledEventId()]; t == contract.UpdatePlacementName || t == contract.UpdateScanName {
			return Entry{What: "attempt", Detail: t + " timed out: " + a.GetFailure().GetMessage()}, true
		}
	case ev.GetActivityTaskCompletedEventAttributes() != nil:
		a := ev.GetActivityTaskCompletedEventAttributes()
		switch scheduled[a.GetScheduledEventId()] {
		case contract.UpdatePlacementName, contract.UpdateScanName:
			return Entry{What: "written", Detail: "TCS holds the record"}, true
		case contract.MarkPlacementFailedName, contract.MarkScanErroredName:
			var r contract.MarkResult
			if p := a.GetResult().GetPayloads(); len(p) > 0 && dc.FromPayload(p[0], &r) == nil {
				d := "marked errored in TCS"
				if !r.Marked {
					d = "not marked: " + r.Note
				}
				return Entry{What: "marked", Detail: d}, true
			}
		}
	case ev.GetWorkflowExecutionSignaledEventAttributes() != nil:
		a := ev.GetWorkflowExecutionSignaledEventAttributes()
		if a.GetSignalName() == contract.SignalTCSAvailable {
			return Entry{}, false
		}
		return operatorEntry("signal "+a.GetSignalName(), a.GetInput().GetPayloads(), dc), true
	case ev.GetWorkflowExecutionUpdateAcceptedEventAttributes() != nil:
		// The operator CLI's retry and abandon: Updates the record accepted (refused ones leave no event).
		r := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest()
		return operatorEntry("update "+r.GetInput().GetName(), r.GetInput().GetArgs().GetPayloads(), dc), true
	case ev.GetUpsertWorkflowSearchAttributesEventAttributes() != nil:
		fields := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
		if p, ok := fields[contract.StateKey.GetName()]; ok {
			var s string
			if dc.FromPayload(p, &s) == nil {
				return Entry{What: "state", Detail: s}, true
			}
		}
	case ev.GetWorkflowExecutionContinuedAsNewEventAttributes() != nil:
		return Entry{What: "state", Detail: "continued as new (a long 401 spell); the timeline goes on in the new run"}, true
	case ev.GetWorkflowExecutionCompletedEventAttributes() != nil:
		return Entry{What: "closed", Detail: "the workflow completed"}, true
	case ev.GetWorkflowExecutionTerminatedEventAttributes() != nil:
		return Entry{What: "closed", Detail: "terminated: " + ev.GetWorkflowExecutionTerminatedEventAttributes().GetReason()}, true
	}
	return Entry{}, false
}

// firstAttempt reads the fast path's local-activity marker.
func firstAttempt(details map[string]*commonpb.Payloads) (Entry, bool) {
	var data struct {
		ActivityType string
	}
	if d := details["data"].GetPayloads(); len(d) > 0 {
		_ = dc.FromPayload(d[0], &data)
	}
	if data.ActivityType != contract.FirstPlacementAttemptName && data.ActivityType != contract.FirstScanAttemptName {
		return Entry{}, false
	}
	var fa contract.FirstAttempt
	if r := details["result"].GetPayloads(); len(r) > 0 && dc.FromPayload(r[0], &fa) == nil {
		if fa.ErrType == "" {
			return Entry{What: "written", Detail: "first attempt (fast path): TCS holds the record"}, true
		}
		return Entry{What: "attempt", Detail: fmt.Sprintf("first attempt (fast path) failed (%s): %s", fa.ErrType, fa.Message)}, true
	}
	return Entry{What: "attempt", Detail: "first attempt (fast path) did not finish"}, true
}

func attemptOf(details *commonpb.Payloads) int32 {
	var d contract.FailureDetails
	if p := details.GetPayloads(); len(p) > 0 {
		_ = dc.FromPayload(p[0], &d)
	}
	return d.Attempt
}

// JSON renders the timeline for --json.
func (t Timeline) JSON() string {
	b, _ := json.MarshalIndent(t, "", "  ")
	return string(b)
}

// operatorEntry is an operator's retry or abandon, by signal or Update, with its payload.
func operatorEntry(what string, in []*commonpb.Payload, dc converter.DataConverter) Entry {
	var p contract.SignalPayload
	if len(in) > 0 {
		_ = dc.FromPayload(in[0], &p)
	}
	e := Entry{What: "operator", Detail: what, By: p.By, Reason: p.Reason, Job: p.Job}
	if len(p.Record) > 0 {
		e.Detail += " with a corrected record " + string(p.Record)
	}
	return e
}
