package activities

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"
)

// headerFirstRun carries the ID of the first run of a workflow's chain (continue-as-new starts a
// new run of the same record) from the workflow to its activities.
const headerFirstRun = "writeback-first-run-id"

// FirstRunInterceptor hands every activity the first run ID of its workflow: the Idempotency-Key
// must stay the same when a record's workflow continues as new (a late commit from the earlier run
// would otherwise not be recognised), and change only for a new chain (reconcile's new run).
// Register it on the worker (worker.Options.Interceptors).
type FirstRunInterceptor struct {
	interceptor.WorkerInterceptorBase
}

type firstRunKey struct{}

func (i *FirstRunInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &firstRunInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}}
}

func (i *FirstRunInterceptor) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &firstRunWorkflow{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

type firstRunWorkflow struct {
	interceptor.WorkflowInboundInterceptorBase
}

func (w *firstRunWorkflow) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return w.Next.Init(&firstRunOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}})
}

type firstRunOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
}

func (o *firstRunOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	o.stamp(ctx)
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

func (o *firstRunOutbound) ExecuteLocalActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	o.stamp(ctx)
	return o.Next.ExecuteLocalActivity(ctx, activityType, args...)
}

func (o *firstRunOutbound) stamp(ctx workflow.Context) {
	if h := interceptor.WorkflowHeader(ctx); h != nil {
		if p, err := converter.GetDefaultDataConverter().ToPayload(o.Next.GetInfo(ctx).FirstRunID); err == nil {
			h[headerFirstRun] = p
		}
	}
}

type firstRunInbound struct {
	interceptor.ActivityInboundInterceptorBase
}

func (a *firstRunInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	if p, ok := interceptor.Header(ctx)[headerFirstRun]; ok {
		var id string
		if converter.GetDefaultDataConverter().FromPayload(p, &id) == nil && id != "" {
			ctx = context.WithValue(ctx, firstRunKey{}, id)
		}
	}
	return a.Next.ExecuteActivity(ctx, in)
}

// FirstRunID is the first run of the activity's workflow chain (its own run without the interceptor).
func FirstRunID(ctx context.Context) string {
	if id, ok := ctx.Value(firstRunKey{}).(string); ok {
		return id
	}
	return activity.GetInfo(ctx).WorkflowExecution.RunID
}
