package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"

	"github.com/tis-writeback/writeback/contract"
)

// KeepAliveInterceptor heartbeats the TCS activities (a record's update, look, mark; a reconcile batch) for as long as
// they run. A TCS call may wait its turn at the rate cap for much longer than one request takes, so
// its start-to-close timeout is long; the heartbeat timeout is what finds a worker that died
// meanwhile. Other activities are left alone: one that keeps its progress in heartbeat details
// would have them overwritten by a heartbeat without any. Register it on the worker
// (worker.Options.Interceptors).
type KeepAliveInterceptor struct {
	interceptor.WorkerInterceptorBase
}

func (i *KeepAliveInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &keepAlive{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}}
}

// tcsActivities are the activities that may wait at the TCS rate cap and keep nothing in heartbeat
// details: the record's, and a reconcile job's batch.
var tcsActivities = func() map[string]bool {
	m := map[string]bool{contract.ReconcileCheckActivity: true}
	for _, k := range contract.Kinds {
		m[k.Update], m[k.Check], m[k.Mark] = true, true, true
	}
	return m
}()

type keepAlive struct {
	interceptor.ActivityInboundInterceptorBase
}

func (a *keepAlive) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	if info.IsLocalActivity || info.HeartbeatTimeout <= 0 || !tcsActivities[info.ActivityType.Name] {
		return a.Next.ExecuteActivity(ctx, in)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(info.HeartbeatTimeout / 3) // the SDK sends at most one per 0.8 × timeout
		defer t.Stop()
		for {
			activity.RecordHeartbeat(ctx)
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return a.Next.ExecuteActivity(ctx, in)
}
