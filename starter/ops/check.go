package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/broker"
)

// Check is one dependency's answer in `starter check`.
type Check struct {
	Name   string `json:"name"` // temporal, rabbitmq, end to end
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// CheckTemporal says whether the namespace exists and has writeback's search attributes.
func CheckTemporal(ctx context.Context, c sdkclient.Client, namespace string) Check {
	ck := Check{Name: "temporal"}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace}); err != nil {
		ck.Detail = fmt.Sprintf("namespace %s: %v", namespace, err)
		return ck
	}
	sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		ck.Detail = fmt.Sprintf("namespace %s: search attributes: %v", namespace, err)
		return ck
	}
	var missing []string
	for _, name := range contract.SearchAttributeNames {
		if _, ok := sa.GetCustomAttributes()[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		ck.Detail = fmt.Sprintf("namespace %s lacks the search attributes %s (Keyword each)", namespace, strings.Join(missing, ", "))
		return ck
	}
	ck.OK, ck.Detail = true, fmt.Sprintf("namespace %s, search attributes %s", namespace, strings.Join(contract.SearchAttributeNames, ", "))
	return ck
}

// CheckRabbitMQ says whether the topology exists and each record queue has a consumer (a starter).
func CheckRabbitMQ(conn broker.ChannelOpener, t broker.Topology) Check {
	ck := Check{Name: "rabbitmq"}
	var parts []string
	for _, q := range []string{t.PlacementQueue, t.ScanQueue, t.DLQ} {
		ch, err := conn.Channel()
		if err != nil {
			ck.Detail = "a channel: " + err.Error()
			return ck
		}
		info, err := broker.InspectQueue(conn, ch, q)
		broker.CloseChannel(conn, ch)
		if err != nil {
			ck.Detail = fmt.Sprintf("queue %s: %v", q, err)
			return ck
		}
		if q != t.DLQ && info.Consumers == 0 {
			ck.Detail = fmt.Sprintf("queue %s has no consumer: no starter consumes it (%d message(s) wait)", q, info.Messages)
			return ck
		}
		parts = append(parts, fmt.Sprintf("%s (%d consumer(s), %d message(s))", q, info.Consumers, info.Messages))
	}
	ck.OK, ck.Detail = true, strings.Join(parts, ", ")
	return ck
}

// CheckEndToEnd starts the probe workflow on the record task queue, with wait as its whole time: a
// worker of the build that gets the records must take it and reach TCS (read-only) within it.
func CheckEndToEnd(ctx context.Context, c sdkclient.Client, id string, wait time.Duration) Check {
	ck := Check{Name: "end to end"}
	run, err := c.ExecuteWorkflow(ctx, sdkclient.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue,
		WorkflowExecutionTimeout: wait}, contract.ProbeWorkflowType)
	if err != nil {
		ck.Detail = "Temporal refused the probe workflow: " + err.Error()
		return ck
	}
	// The server ends the probe at wait; the client waits a little longer for that answer.
	gctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
	defer cancel()
	var res contract.ProbeResult
	err = run.Get(gctx, &res)
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		ck.OK, ck.Detail = true, fmt.Sprintf("probe %s ran on worker %s: %s", id, res.Worker, res.Answer)
	case errors.As(err, &app):
		ck.Detail = fmt.Sprintf("probe %s: %s", id, app.Message())
	case isTimeout(err) && !taken(ctx, c, id):
		ck.Detail = fmt.Sprintf("probe %s: no worker took it within %s: is a worker running on task queue %s, of the build that gets the records (starter versioning status)?",
			id, wait, contract.TaskQueue)
	case isTimeout(err):
		ck.Detail = fmt.Sprintf("probe %s: a worker took it, but its read of TCS did not end within %s (TCS slow, or the worker's cap queue long)", id, wait)
	default:
		ck.Detail = fmt.Sprintf("probe %s: %v", id, err)
	}
	return ck
}

// taken says whether a worker started the probe's first workflow task.
func taken(ctx context.Context, c sdkclient.Client, id string) bool {
	it := c.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return false
		}
		if e.GetEventType() == enums.EVENT_TYPE_WORKFLOW_TASK_STARTED {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te)
}

// Failed lists the checks that failed.
func Failed(checks []Check) []Check {
	return slices.DeleteFunc(slices.Clone(checks), func(c Check) bool { return c.OK })
}
