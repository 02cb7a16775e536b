package operate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/tcs"
	"github.com/tis-writeback/writeback/tcs/guard"
)

// ledgerPageSize is how many of a day's records one ledger activity reads.
const ledgerPageSize = 500

// Ledger is the daily ledger's activity: it reads a day's records from Temporal's visibility and their
// rows from TCS through the worker's client (so under its cap, its hold and its outage mode).
type Ledger struct {
	Temporal client.Client
	TCS      *tcs.Client
}

// LedgerDayQuery is the visibility query of a day's records: every run whose workflow started that day.
func LedgerDayQuery(day string) (string, error) {
	from, err := contract.ParseLedgerDay(day)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`(%s="%s" OR %s="%s") AND StartTime >= "%s" AND StartTime < "%s"`,
		contract.KindKey.GetName(), contract.KindPlacement, contract.KindKey.GetName(), contract.KindScan,
		from.Format(time.RFC3339), from.AddDate(0, 0, 1).Format(time.RFC3339)), nil
}

// Page reads one page of the day's records: it counts them by outcome, reads each Completed one's
// row in TCS as recovery traffic, and starts again the ones whose row is gone or differs (unless
// report-only). A request TCS refused (hold, outage mode) fails the page, which the ledger tries again.
func (l *Ledger) Page(ctx context.Context, req contract.LedgerPageRequest) (contract.LedgerPage, error) {
	q, err := LedgerDayQuery(req.Day)
	if err != nil {
		return contract.LedgerPage{}, temporal.NewNonRetryableApplicationError(err.Error(), "bad-day", nil)
	}
	resp, err := l.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: ledgerPageSize,
		NextPageToken: req.Token})
	if err != nil {
		return contract.LedgerPage{}, err
	}
	page := contract.LedgerPage{Counts: map[string]int{}, Next: resp.GetNextPageToken()}
	tctx := guard.AsRecovery(guard.WithCaller(ctx, req.LedgerID))
	for i, e := range resp.GetExecutions() {
		activity.RecordHeartbeat(ctx, i)
		later, err := l.laterRun(ctx, e, req.LedgerID)
		if err != nil {
			return contract.LedgerPage{}, err
		}
		if later != nil {
			if later.ours { // an earlier attempt of this page (its worker killed) found this drift and wrote it again
				page.Drift = append(page.Drift, contract.LedgerDrift{WorkflowID: e.GetExecution().GetWorkflowId(),
					Kind: keyword(e, contract.KindKey), RecordID: keyword(e, contract.RecordIDKey),
					What: "found by an earlier attempt of this ledger", Action: "written again by run " + later.runID})
				page.Repaired++
				page.Checked++ // read by that attempt: the report counts every record read once
			}
			continue // a later run of the record counts for it (and is read) instead
		}
		state, failure := keyword(e, contract.StateKey), keyword(e, contract.FailureKey)
		switch {
		case state == contract.StateDeadLettered && contract.IsPoisonGroup(failure):
			page.Counts[contract.LedgerPoison]++
		case state != "":
			page.Counts[state]++
		}
		if state == contract.StateDeadLettered && e.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			page.Expired = append(page.Expired, e.GetExecution().GetWorkflowId())
		}
		if state != contract.StateCompleted {
			continue
		}
		msg, err := l.message(ctx, e)
		if err != nil {
			return contract.LedgerPage{}, err
		}
		d, err := l.check(tctx, e, msg)
		if err != nil {
			return contract.LedgerPage{}, err
		}
		page.Checked++
		if d == nil {
			continue
		}
		if req.ReportOnly {
			d.Action = "listed (report-only): not written"
		} else {
			d.Action = l.repair(ctx, msg, req)
			page.Repaired++
		}
		page.Drift = append(page.Drift, *d)
	}
	return page, nil
}

// laterRun is the record's latest run when e, a closed run, is not it (a retry of a closed run,
// reconcile or a ledger started the record again); ours says this ledger started it.
func (l *Ledger) laterRun(ctx context.Context, e *workflowpb.WorkflowExecutionInfo, ledgerID string) (*later, error) {
	if e.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil, nil
	}
	d, err := l.Temporal.DescribeWorkflowExecution(ctx, e.GetExecution().GetWorkflowId(), "")
	if err != nil {
		return nil, err
	}
	runID := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	if runID == e.GetExecution().GetRunId() {
		return nil, nil
	}
	details := detailsOf(d.GetExecutionConfig().GetUserMetadata().GetDetails())
	return &later{runID: runID, ours: strings.Contains(details, "("+ledgerID+",")}, nil
}

type later struct {
	runID string
	ours  bool
}

// check reads the record's row: nil when TCS holds it as the record wrote it.
func (l *Ledger) check(tctx context.Context, e *workflowpb.WorkflowExecutionInfo, msg any) (*contract.LedgerDrift, error) {
	d := &contract.LedgerDrift{WorkflowID: e.GetExecution().GetWorkflowId(), Kind: keyword(e, contract.KindKey), RecordID: keyword(e, contract.RecordIDKey)}
	switch m := msg.(type) {
	case contract.PlacementExported:
		p, err := l.TCS.GetPlacement(tctx, m.PlacementID)
		switch {
		case tcs.IsNotFound(err):
			d.What = "TCS does not know the placement any more"
		case err != nil:
			return nil, err
		default:
			for _, ev := range p.ESREvents {
				if ev.Status == tcs.StatusExported && ev.Filename == m.Filename {
					return nil, nil
				}
			}
			d.What = "no EXPORTED event for " + m.Filename
		}
	case contract.ScanCompleted:
		sc, err := l.TCS.GetScan(tctx, m.ScanID)
		switch {
		case tcs.IsNotFound(err):
			d.What = "TCS does not know the scan any more"
		case err != nil:
			return nil, err
		case sc.Status == tcs.ScanCompleted && sc.Result == m.Result:
			return nil, nil
		default:
			d.What = fmt.Sprintf("the scan is %s %s, not COMPLETED %s", sc.Status, sc.Result, m.Result)
		}
	}
	return d, nil
}

// message is what the run last wrote: its first event's input or, when an operator's retry carried a
// correction of the same record (a retry signal, or an accepted retry Update), the last such record.
// A correction the run refused names another record, or is invalid, and is passed over; one sent while
// the record was not parked is taken all the same (rare; its row is then compared with it).
func (l *Ledger) message(ctx context.Context, e *workflowpb.WorkflowExecutionInfo) (contract.Message, error) {
	id := e.GetExecution().GetWorkflowId()
	it := l.Temporal.GetWorkflowHistory(ctx, id, e.GetExecution().GetRunId(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	dc := converter.GetDefaultDataConverter()
	kind := contract.KindScan
	if e.GetType().GetName() == contract.PlacementWorkflowType {
		kind = contract.KindPlacement
	}
	var msg contract.Message
	correction := func(payloads []*commonpb.Payload) {
		var p contract.SignalPayload
		if msg == nil || len(payloads) == 0 || dc.FromPayload(payloads[0], &p) != nil || len(p.Record) == 0 {
			return
		}
		if m, _, err := kind.Parse(p.Record); err == nil && msg.SameRecord(m) == nil {
			msg = m
		}
	}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, err
		}
		switch ev.GetEventType() {
		case enums.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			in := ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
			if len(in) == 0 {
				return nil, fmt.Errorf("%s: no input", id)
			}
			if msg, err = fromPayload(kind, dc, in[0]); err != nil {
				return nil, fmt.Errorf("%s: its input: %w", id, err)
			}
		case enums.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a.GetSignalName() == contract.SignalRetry {
				correction(a.GetInput().GetPayloads())
			}
		case enums.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			if in := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput(); in.GetName() == contract.SignalRetry {
				correction(in.GetArgs().GetPayloads())
			}
		}
	}
	if msg == nil {
		return nil, fmt.Errorf("%s: no history", id)
	}
	return msg, nil
}

// fromPayload decodes a workflow's input, a message of kind.
func fromPayload(kind contract.Kind, dc converter.DataConverter, p *commonpb.Payload) (contract.Message, error) {
	if kind == contract.KindPlacement {
		var m contract.PlacementExported
		err := dc.FromPayload(p, &m)
		return m, err
	}
	var m contract.ScanCompleted
	err := dc.FromPayload(p, &m)
	return m, err
}

// repair starts the record again: a new run of its workflow ID, at recovery priority, whose history
// says the ledger started it and why. A run already going (a retried page, an operator) is left to it.
func (l *Ledger) repair(ctx context.Context, msg contract.Message, req contract.LedgerPageRequest) string {
	runID, err := startAgain(ctx, l.Temporal, msg, fmt.Sprintf("started by the ledger of %s (%s, by %s): TCS no longer holds the row this record wrote",
		req.Day, req.LedgerID, req.By))
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &already):
		return "being written again by run " + already.RunId
	case err != nil:
		return "not started: " + err.Error()
	}
	return "written again by run " + runID
}

func keyword(e *workflowpb.WorkflowExecutionInfo, key temporal.SearchAttributeKeyKeyword) string {
	return Keyword(e.GetSearchAttributes(), key)
}
