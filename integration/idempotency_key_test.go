package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/activities"
	"github.com/tis-writeback/writeback/internal/testenv"
)

// The Idempotency-Key of a record's write stays the same when its workflow continues as new (a
// long wait makes a fresh run of the same record): a write of the earlier run that TCS committed
// late is then recognised, not inserted again. A new chain (reconcile's new run) gets its own.
func TestIdempotencyKeySurvivesContinueAsNew(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	tm := testenv.StartTemporal(t)
	const tq = "key-probe"
	w := worker.New(tm.Client, tq, worker.Options{Interceptors: []interceptor.WorkerInterceptor{&activities.FirstRunInterceptor{}}})
	probe := func(ctx context.Context) (string, error) { return activities.FirstRunID(ctx), nil }
	var chain func(ctx workflow.Context, runs int, seen []string) ([]string, error)
	chain = func(ctx workflow.Context, runs int, seen []string) ([]string, error) {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second})
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
		var local, regular string
		if err := workflow.ExecuteLocalActivity(lctx, probe).Get(ctx, &local); err != nil {
			return nil, err
		}
		if err := workflow.ExecuteActivity(actx, "probe").Get(ctx, &regular); err != nil {
			return nil, err
		}
		seen = append(seen, local, regular, workflow.GetInfo(ctx).WorkflowExecution.RunID)
		if runs > 1 {
			return nil, workflow.NewContinueAsNewError(ctx, "chain", runs-1, seen)
		}
		return seen, nil
	}
	w.RegisterWorkflowWithOptions(chain, workflow.RegisterOptions{Name: "chain"})
	w.RegisterActivityWithOptions(probe, activity.RegisterOptions{Name: "probe"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	run := func() (seen []string) {
		r, err := tm.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: "key-chain", TaskQueue: tq}, "chain", 3, []string{})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, r.Get(ctx, &seen))
		return seen
	}
	seen := run()
	require.Len(t, seen, 9)
	first := seen[2] // the first run's own ID
	for i := 0; i < 3; i++ {
		require.Equal(t, first, seen[3*i], "run %d's local activity sees the chain's first run", i+1)
		require.Equal(t, first, seen[3*i+1], "run %d's activity sees the chain's first run", i+1)
	}
	require.NotEqual(t, seen[2], seen[8], "the runs are different runs")
	seen2 := run()
	require.NotEqual(t, first, seen2[2])
	require.Equal(t, seen2[2], seen2[0], "a new chain has its own")
}
