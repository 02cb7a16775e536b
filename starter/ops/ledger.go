package ops

import (
	"context"
	"errors"
	"fmt"

	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/tis-writeback/writeback/contract"
)

// ErrNoLedger: no ledger ever ran for the day.
var ErrNoLedger = errors.New("no ledger ran for this day")

// LastLedger finds the day's last ledger and reads its report: the result of a finished one, the query
// of a running one (the memo's counts when no worker answers).
func LastLedger(ctx context.Context, c sdkclient.Client, day string) (contract.LedgerReport, error) {
	var rep contract.LedgerReport
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 100,
		Query: fmt.Sprintf(`WorkflowType=%q AND %s=%q AND %s=%q`, contract.LedgerWorkflowType,
			contract.KindKey.GetName(), contract.LedgerKind, contract.RecordIDKey.GetName(), day)})
	if err != nil {
		return rep, err
	}
	execs := resp.GetExecutions()
	if len(execs) == 0 {
		return rep, ErrNoLedger
	}
	last := execs[0]
	for _, e := range execs[1:] {
		if e.GetStartTime().AsTime().After(last.GetStartTime().AsTime()) {
			last = e
		}
	}
	id, runID := last.GetExecution().GetWorkflowId(), last.GetExecution().GetRunId()
	if p, ok := last.GetMemo().GetFields()[contract.MemoLedger]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &rep)
	}
	switch last.GetStatus() {
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		err = c.GetWorkflow(ctx, id, runID).Get(ctx, &rep)
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
		if v, qerr := c.QueryWorkflow(ctx, id, runID, contract.QueryLedger); qerr == nil {
			err = v.Get(&rep)
		}
	case enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		err = c.GetWorkflow(ctx, id, "").Get(ctx, &rep)
	default:
		rep.State = last.GetStatus().String()
	}
	if rep.ID == "" {
		rep.ID, rep.Day = id, day
	}
	return rep, err
}
