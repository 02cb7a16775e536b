// Package ops holds the operator's bulk actions: signal dead letters (retry/abandon), redrive the
// DLQ, reconcile placements against TCS. Each returns a summary the command prints.
package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/operate"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
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

// Step is one record in a plan: signalled, or skipped and why.
type Step struct {
	WorkflowID string
	Skip       string // why it is skipped; "" when it will be signalled
}

// Plan is what a retry or abandon of these targets does, record by record, in order: the job follows
// it (it signals the records the plan signals, and a record still refuses at the moment it would act
// if it stopped being parked or reached --max-retries since), and --dry-run prints it. retries, when
// set, reads a record's retries so the plan can name those at --max-retries; the job leaves that to
// the record itself, so a plan of thousands needs no query each.
func Plan(targets []Target, signal string, maxRetries int, retries func(id string) (int, bool)) []Step {
	steps := make([]Step, 0, len(targets))
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		if seen[t.WorkflowID] {
			continue // listed twice (an --ids-file line repeated): one record, one request
		}
		seen[t.WorkflowID] = true
		st := Step{WorkflowID: t.WorkflowID}
		switch {
		case !t.Running:
			st.Skip = "closed"
		case t.State != contract.StateDeadLettered:
			st.Skip = "state " + t.State + ", not DeadLettered"
		case signal == contract.SignalRetry && maxRetries > 0 && retries != nil:
			if n, ok := retries(t.WorkflowID); ok && n >= maxRetries {
				st.Skip = fmt.Sprintf("already retried %d times (--max-retries %d)", n, maxRetries)
			}
		}
		steps = append(steps, st)
	}
	return steps
}

// Retries reads the records' retry counts (their state query), 16 at a time.
func Retries(ctx context.Context, c client.Client, ids []string) func(id string) (int, bool) {
	got := make(map[string]int, len(ids))
	var mu sync.Mutex
	operate.ForEach(ids, 16, func(id string) {
		if st, err := operate.QueryState(ctx, c, id); err == nil {
			mu.Lock()
			got[id] = st.Retries
			mu.Unlock()
		}
	})
	return func(id string) (int, bool) { n, ok := got[id]; return n, ok }
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
			// In workflow ID order: the order a --dry-run prints and the job then follows (visibility's
			// own order changes as records do).
			sort.SliceStable(out, func(a, b int) bool { return out[a].WorkflowID < out[b].WorkflowID })
			return out, nil
		}
	}
}
