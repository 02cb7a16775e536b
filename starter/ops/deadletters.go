package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
)

// NoGroup names the dead letters parked before WritebackFailure existed.
const NoGroup = "(none)"

// Group is the dead letters of one kind and one failure group.
type Group struct {
	Kind, Name     string
	Count          int
	Oldest, Newest time.Time // start times of the workflows
	Example        string    // one workflow ID
}

// Query is the visibility query of the group's running dead letters.
func (g Group) Query() string {
	q := fmt.Sprintf(`%s=%q AND %s=%q AND ExecutionStatus="Running"`, contract.StateKey.GetName(), contract.StateDeadLettered,
		contract.KindKey.GetName(), g.Kind)
	if g.Name == NoGroup {
		return q + " AND " + contract.FailureKey.GetName() + " IS NULL"
	}
	return q + fmt.Sprintf(` AND %s=%q`, contract.FailureKey.GetName(), g.Name)
}

// RetryCommand is the command that retries the group, for the starter run as prog.
func (g Group) RetryCommand(prog string) string {
	if g.Name == NoGroup {
		return fmt.Sprintf("%s retry --query '%s' --reason '…'", prog, g.Query())
	}
	return fmt.Sprintf("%s retry --group %s --reason '…'", prog, g.Name)
}

// UILink is the Temporal UI's list of the group's dead letters.
func (g Group) UILink(uiBase, namespace string) string {
	return fmt.Sprintf("%s/namespaces/%s/workflows?query=%s", strings.TrimRight(uiBase, "/"), url.PathEscape(namespace),
		url.QueryEscape(g.Query()))
}

// GroupQuery is the visibility query for --group NAME: the running dead letters of that group.
func GroupQuery(name string) string {
	return fmt.Sprintf(`%s=%q AND %s=%q AND ExecutionStatus="Running"`, contract.StateKey.GetName(), contract.StateDeadLettered,
		contract.FailureKey.GetName(), name)
}

// DeadLetterGroups lists the running dead letters grouped by kind and failure group, largest first.
func DeadLetterGroups(ctx context.Context, c client.Client) ([]Group, error) {
	query := fmt.Sprintf(`%s=%q AND ExecutionStatus="Running"`, contract.StateKey.GetName(), contract.StateDeadLettered)
	groups := map[[2]string]*Group{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			if e.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
				continue
			}
			kind := keyword(e.GetSearchAttributes(), contract.KindKey.GetName())
			name := keyword(e.GetSearchAttributes(), contract.FailureKey.GetName())
			if name == "" {
				name = NoGroup
			}
			g := groups[[2]string{kind, name}]
			if g == nil {
				g = &Group{Kind: kind, Name: name, Example: e.GetExecution().GetWorkflowId()}
				groups[[2]string{kind, name}] = g
			}
			g.Count++
			t := e.GetStartTime().AsTime()
			if g.Oldest.IsZero() || t.Before(g.Oldest) {
				g.Oldest = t
			}
			if t.After(g.Newest) {
				g.Newest = t
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	out := make([]Group, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Kind+out[i].Name < out[j].Kind+out[j].Name
	})
	return out, nil
}

// CorrectedRecord checks a corrected message for the workflow workflowID before it is sent as a
// retry's record: it must be a valid message of the same record. The error says why not.
func CorrectedRecord(workflowID string, body []byte) (json.RawMessage, error) {
	body = []byte(strings.TrimSpace(string(body)))
	kind, err := contract.KindOfWorkflowID(workflowID)
	if err != nil {
		return nil, err
	}
	m, _, err := kind.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("the corrected record is not a valid %s message: %w", kind, err)
	}
	if m.WorkflowID() != workflowID {
		return nil, fmt.Errorf("the corrected record names %s %s (workflow %s), but %s is another record",
			kind, m.RecordID(), m.WorkflowID(), workflowID)
	}
	return body, nil
}
