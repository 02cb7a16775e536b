package chaos

import (
	"context"
	"fmt"
	"sort"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
)

// settledQuery lists the workflows whose record has settled: written, or a dead letter parked
// for an operator.
const settledQuery = `WritebackState="Completed" OR (WritebackState="DeadLettered" AND ExecutionStatus="Running")`

// ownRecords are the workflow IDs of this run's records. A run counts only these: the namespace
// may hold other records (a deployment's own checks, an earlier run), and counting those would
// declare the run settled while its own records are still being written.
type ownRecords map[string]bool

func ownOf(recs []record) ownRecords {
	own := ownRecords{}
	for _, r := range recs {
		own[r.id] = true
	}
	return own
}

// settled counts this run's records among the listed workflow IDs (each once).
func (o ownRecords) settled(listed []string) int {
	seen := map[string]bool{}
	for _, id := range listed {
		if o[id] {
			seen[id] = true
		}
	}
	return len(seen)
}

// unsettled are this run's records not among the listed ones, sorted.
func (o ownRecords) unsettled(listed []string) []string {
	in := map[string]bool{}
	for _, id := range listed {
		in[id] = true
	}
	var out []string
	for id := range o {
		if !in[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// listIDs lists the workflow IDs matching q (nil when visibility cannot be asked).
func listIDs(ctx context.Context, c client.Client, q string) ([]string, error) {
	var out []string
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.GetExecutions() {
			out = append(out, e.GetExecution().GetWorkflowId())
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// stillMoving describes records that have not settled: each one's state and last error, as its
// workflow answers (at most max of them).
func stillMoving(ctx context.Context, c client.Client, ids []string, max int) []string {
	var out []string
	for i, id := range ids {
		if i == max {
			out = append(out, fmt.Sprintf("and %d more", len(ids)-max))
			break
		}
		var st contract.Status
		v, err := c.QueryWorkflow(ctx, id, "", contract.QueryState)
		if err == nil {
			err = v.Get(&st)
		}
		if err != nil {
			out = append(out, fmt.Sprintf("%s (state unknown: %v)", id, err))
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s after %d attempts; last error: %s)", id, st.State, st.Attempts, st.LastError))
	}
	return out
}
