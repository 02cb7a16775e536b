// Package operate holds what the operator's tools do to one record's workflow: read its state,
// signal it, wait for the outcome. The starter's commands and the retry-job activities share it.
package operate

import (
	"context"
	"errors"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"

	"github.com/tis-writeback/writeback/contract"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"
)

// Outcomes of a signalled record.
const (
	OutcomeCompleted    = "completed"
	OutcomeDeadLettered = "dead-lettered again"
	OutcomeUpdating     = "still updating"
	OutcomeAbandoned    = "abandoned"
)

// Outcome is what became of one signalled record.
type Outcome struct {
	WorkflowID string `json:"workflowId"`
	Result     string `json:"result"`
	Reason     string `json:"reason,omitempty"` // the new lastError, when dead-lettered again
}

// QueryState asks a workflow its state (the latest run).
func QueryState(ctx context.Context, c client.Client, id string) (contract.Status, error) {
	var st contract.Status
	v, err := c.QueryWorkflow(ctx, id, "", contract.QueryState)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

// Parked reports whether id's latest run is open and DeadLettered (from visibility, no worker needed).
func Parked(ctx context.Context, c client.Client, id string) (bool, error) {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return false, nil
	}
	return Keyword(info.GetSearchAttributes(), contract.StateKey) == contract.StateDeadLettered, nil
}

// Snapshot reads each workflow's last dead-lettering time, so that Await can tell a new
// dead-lettering from the one the signal answered.
func Snapshot(ctx context.Context, c client.Client, ids []string) map[string]string {
	out := make(map[string]string, len(ids))
	var mu sync.Mutex
	ForEach(ids, 16, func(id string) {
		st, err := QueryState(ctx, c, id)
		if err == nil {
			mu.Lock()
			out[id] = st.DeadLetteredAt
			mu.Unlock()
		}
	})
	return out
}

// Await polls the signalled workflows until each has settled (completed, abandoned, or
// dead-lettered again) or wait has passed (it looks at least once); what has not settled is still
// updating. tick, if set, is called after each record looked at (heartbeats): a slow record's
// query is given up after queryTimeout, and asked again next round.
func Await(ctx context.Context, c client.Client, ids []string, before map[string]string, wait time.Duration, tick func()) []Outcome {
	deadline := time.Now().Add(wait)
	settled := map[string]Outcome{}
	var mu sync.Mutex
	for looked := false; ; looked = true {
		var open []string
		for _, id := range ids {
			if _, ok := settled[id]; !ok {
				open = append(open, id)
			}
		}
		if len(open) == 0 || (looked && time.Now().After(deadline)) || ctx.Err() != nil {
			break
		}
		ForEach(open, 16, func(id string) {
			qctx, cancel := context.WithTimeout(ctx, queryTimeout)
			st, err := QueryState(qctx, c, id)
			cancel()
			mu.Lock()
			defer mu.Unlock()
			if tick != nil {
				tick()
			}
			if err != nil {
				return // transient: asked again next round
			}
			o := Outcome{WorkflowID: id}
			switch {
			case st.State == contract.StateCompleted:
				o.Result = OutcomeCompleted
			case st.State == contract.StateAbandoned:
				o.Result = OutcomeAbandoned
			case st.State == contract.StateDeadLettered && st.DeadLetteredAt != before[id]:
				o.Result, o.Reason = OutcomeDeadLettered, st.LastError
			default:
				return
			}
			settled[id] = o
		})
		if time.Now().After(deadline) {
			continue // the loop's test ends it
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	out := make([]Outcome, 0, len(ids))
	for _, id := range ids {
		o, ok := settled[id]
		if !ok {
			o = Outcome{WorkflowID: id, Result: OutcomeUpdating}
		}
		out = append(out, o)
	}
	return out
}

// queryTimeout bounds one state query (a record's worker busy, or its task failing).
const queryTimeout = 5 * time.Second

// ForEach runs f on every item, n at a time: the one bounded pool of the operator commands
// (retry, abandon, reconcile) and the retry jobs.
func ForEach[T any](items []T, n int, f func(T)) {
	var g errgroup.Group
	g.SetLimit(max(n, 1))
	for _, it := range items {
		g.Go(func() error { f(it); return nil })
	}
	_ = g.Wait()
}

// Keyword is a run's keyword search attribute key (empty when unset).
func Keyword(sa *commonpb.SearchAttributes, key temporal.SearchAttributeKeyKeyword) string {
	var s string
	if p := sa.GetIndexedFields()[key.GetName()]; p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
	}
	return s
}
