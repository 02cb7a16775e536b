package operate

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"golang.org/x/time/rate"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/workflows"
)

// Jobs are the activities of a retry job: they signal the records' workflows and watch them.
type Jobs struct {
	Temporal client.Client
}

// SignalBatch signals a batch of records at the job's rate, skipping those no longer parked and
// those operators already retried MaxRetries times. A retried attempt goes on where the last one
// got to (heartbeat), so no record is signalled twice.
func (j *Jobs) SignalBatch(ctx context.Context, req workflows.BatchRequest) (workflows.BatchResult, error) {
	res := workflows.BatchResult{Before: map[string]string{}, Skipped: map[string]string{}}
	done := 0
	if activity.HasHeartbeatDetails(ctx) {
		var p struct {
			Done   int
			Result workflows.BatchResult
		}
		if activity.GetHeartbeatDetails(ctx, &p) == nil {
			done, res = p.Done, p.Result
		}
	}
	lim := rate.NewLimiter(rate.Limit(max(req.Rate, 0.1)), 1)
	for i := done; i < len(req.IDs); i++ {
		id := req.IDs[i]
		if err := lim.Wait(ctx); err != nil {
			return res, err
		}
		why, before, err := j.signalOne(ctx, req, id)
		if err != nil {
			return res, err // retried from here
		}
		if why != "" {
			res.Skipped[id] = why
		} else {
			res.Signalled = append(res.Signalled, id)
			res.Before[id] = before
		}
		activity.RecordHeartbeat(ctx, struct {
			Done   int
			Result workflows.BatchResult
		}{i + 1, res})
	}
	return res, nil
}

func (j *Jobs) signalOne(ctx context.Context, req workflows.BatchRequest, id string) (skip, before string, err error) {
	parked, err := Parked(ctx, j.Temporal, id)
	if err != nil {
		return "", "", err
	}
	if !parked {
		return "closed or no longer DeadLettered", "", nil
	}
	st, err := QueryState(ctx, j.Temporal, id)
	if err != nil {
		return "", "", err
	}
	if req.Signal == contract.SignalRetry && req.MaxRetries > 0 && st.Retries >= req.MaxRetries {
		return fmt.Sprintf("already retried %d times (--max-retries %d)", st.Retries, req.MaxRetries), "", nil
	}
	err = j.Temporal.SignalWorkflow(ctx, id, "", req.Signal, req.Payload)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return "closed", "", nil
	}
	return "", st.DeadLetteredAt, err
}

// AwaitOutcomes watches signalled records until they settle or the wait passes.
func (j *Jobs) AwaitOutcomes(ctx context.Context, req workflows.AwaitRequest) ([]workflows.JobOutcome, error) {
	outs := Await(ctx, j.Temporal, req.IDs, req.Before, req.Wait, func() { activity.RecordHeartbeat(ctx) })
	res := make([]workflows.JobOutcome, len(outs))
	for i, o := range outs {
		res[i] = workflows.JobOutcome{WorkflowID: o.WorkflowID, Result: o.Result, Reason: o.Reason}
	}
	return res, ctx.Err()
}
