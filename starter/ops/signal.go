// Package ops holds the operator's bulk actions: signal dead letters (retry/abandon), redrive the
// DLQ, reconcile placements against TCS. Each returns a summary the command prints.
package ops

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/operate"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/time/rate"
)

// Selection says which workflows to signal: exactly one of its fields.
type Selection struct {
	WorkflowID string
	Query      string
	All        bool     // every running workflow with WritebackState="DeadLettered"
	Group      string   // the running dead letters whose WritebackFailure is this group
	IDs        []string // these workflow IDs (--ids-file)
	PageSize   int      // visibility page size (default 1000)
}

// Validate reports a selection that names none or several.
func (s Selection) Validate() error {
	n := 0
	for _, set := range []bool{s.WorkflowID != "", s.Query != "", s.All, s.Group != "", len(s.IDs) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("give exactly one of --workflow-id, --query, --group, --all or --ids-file")
	}
	return nil
}

// Target is one workflow the selection found.
type Target struct {
	WorkflowID string
	RunID      string
	Running    bool
	State      string // WritebackState
}

// SignalOptions tune a bulk signal.
type SignalOptions struct {
	Signal      string // contract.SignalRetry or contract.SignalAbandon
	Payload     contract.SignalPayload
	DryRun      bool
	Rate        float64 // signals per second
	Concurrency int
	Progress    func(done int)
}

// SignalSummary is what a bulk signal did.
type SignalSummary struct {
	Signalled     []string
	SkippedClosed []string
	SkippedState  map[string]string // workflow ID → its state, not DeadLettered
	Failed        map[string]string // workflow ID → error
	WouldSignal   []string          // dry run
}

// Find lists the workflows a selection matches, paging through visibility.
func Find(ctx context.Context, c client.Client, sel Selection) ([]Target, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	if sel.WorkflowID != "" {
		sel.IDs = []string{sel.WorkflowID}
	}
	if len(sel.IDs) > 0 {
		var out []Target
		for _, id := range sel.IDs {
			d, err := c.DescribeWorkflowExecution(ctx, id, "")
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) && sel.WorkflowID == "" {
				out = append(out, Target{WorkflowID: id}) // reported as closed (no such workflow)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("workflow %s: %w", id, err)
			}
			info := d.GetWorkflowExecutionInfo()
			out = append(out, Target{WorkflowID: id, RunID: info.GetExecution().GetRunId(),
				Running: info.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, State: stateOf(info.GetSearchAttributes())})
		}
		return out, nil
	}
	query := sel.Query
	if sel.All {
		query = fmt.Sprintf(`%s=%q AND ExecutionStatus="Running"`, contract.StateKey.GetName(), contract.StateDeadLettered)
	}
	if sel.Group != "" {
		query = GroupQuery(sel.Group)
	}
	pageSize := sel.PageSize
	if pageSize <= 0 {
		pageSize = 1000
	}
	var out []Target
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: int32(pageSize), NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			out = append(out, Target{WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
				Running: e.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, State: stateOf(e.GetSearchAttributes())})
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}

// SignalAll signals every running, dead-lettered target, concurrently within a rate limit.
// Closed workflows and ones not DeadLettered are skipped: the workflow would ignore the signal.
func SignalAll(ctx context.Context, c client.Client, targets []Target, o SignalOptions) SignalSummary {
	sum := SignalSummary{SkippedState: map[string]string{}, Failed: map[string]string{}}
	var todo []Target
	for _, t := range targets {
		switch {
		case !t.Running:
			sum.SkippedClosed = append(sum.SkippedClosed, t.WorkflowID)
		case t.State != contract.StateDeadLettered:
			sum.SkippedState[t.WorkflowID] = t.State
		default:
			todo = append(todo, t)
		}
	}
	if o.DryRun {
		for _, t := range todo {
			sum.WouldSignal = append(sum.WouldSignal, t.WorkflowID)
		}
		return sum
	}
	if o.Rate <= 0 {
		o.Rate = 50
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	limiter := rate.NewLimiter(rate.Limit(o.Rate), max(1, int(o.Rate/10)))
	var mu sync.Mutex
	done := 0
	operate.ForEach(todo, o.Concurrency, func(t Target) {
		err := limiter.Wait(ctx)
		if err == nil {
			// Signal the run we found, so a newer run of the same ID is never hit by surprise.
			err = c.SignalWorkflow(ctx, t.WorkflowID, t.RunID, o.Signal, o.Payload)
		}
		mu.Lock()
		defer mu.Unlock()
		var nf *serviceerror.NotFound
		switch {
		case err == nil:
			sum.Signalled = append(sum.Signalled, t.WorkflowID)
		case errors.As(err, &nf):
			sum.SkippedClosed = append(sum.SkippedClosed, t.WorkflowID) // closed since we listed it
		default:
			sum.Failed[t.WorkflowID] = err.Error()
		}
		done++
		if o.Progress != nil {
			o.Progress(done)
		}
	})
	return sum
}

// SignalIDs are the IDs of the targets SignalAll would signal.
func SignalIDs(targets []Target) []string {
	var ids []string
	for _, t := range targets {
		if t.Running && t.State == contract.StateDeadLettered {
			ids = append(ids, t.WorkflowID)
		}
	}
	return ids
}

// ToSignal counts the targets SignalAll would signal.
func ToSignal(targets []Target) int { return len(SignalIDs(targets)) }
