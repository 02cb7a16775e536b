package operate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/tcs"
	"github.com/tis-writeback/writeback/tcs/guard"
)

// Reconciler is the reconcile job's activity: it reads TCS through the worker's guard (as recovery
// traffic, behind fresh records) and starts, in Temporal, the records TCS lacks.
type Reconciler struct {
	Temporal client.Client
	TCS      *tcs.Client
}

// Check checks a batch of placements. A read the guard did not send (hold, outage mode, a queue at
// the cap longer than contract.ReconcileReadWait) leaves its placement without an outcome: the job
// asks for it again later. The keep-alive interceptor heartbeats it; a worker stopping mid-batch
// fails it, so the batch is asked for again rather than its reads counted as failed.
func (r *Reconciler) Check(ctx context.Context, req contract.ReconcileCheckRequest) (contract.ReconcileCheckResult, error) {
	res := contract.ReconcileCheckResult{Outcomes: []contract.ReconcileOutcome{}}
	tctx := guard.AsRecovery(guard.WithCaller(ctx, req.JobID))
	conc := req.Input.Concurrency
	if conc <= 0 {
		conc = contract.ReconcileConcurrency
	}
	var mu sync.Mutex
	ForEach(req.Placements, conc, func(m contract.PlacementExported) {
		out, notSent := r.one(tctx, req, m)
		mu.Lock()
		defer mu.Unlock()
		if notSent != nil {
			res.NotSent = notSent.Error()
			return
		}
		res.Outcomes = append(res.Outcomes, out)
	})
	if err := ctx.Err(); err != nil {
		return contract.ReconcileCheckResult{}, err
	}
	return res, nil
}

func (r *Reconciler) one(ctx context.Context, req contract.ReconcileCheckRequest, m contract.PlacementExported) (contract.ReconcileOutcome, error) {
	out := contract.ReconcileOutcome{WorkflowID: m.WorkflowID()}
	rctx, cancel := context.WithTimeout(ctx, contract.ReconcileReadWait)
	p, err := r.TCS.GetPlacement(rctx, m.PlacementID)
	cancel()
	switch {
	case tcs.Classify(err) == tcs.Refused:
		return out, err
	case tcs.IsNotFound(err):
		out.Outcome = contract.ReconcileUnknown
		return out, nil
	case err != nil:
		out.Outcome, out.Detail = contract.ReconcileFailed, err.Error()
		return out, nil
	}
	for _, ev := range p.ESREvents {
		if ev.Status == tcs.StatusExported && ev.Filename == m.Filename {
			out.Outcome = contract.ReconcilePresent
			return out, nil
		}
	}
	out.Outcome, out.Detail = r.missing(ctx, req, m)
	return out, nil
}

// missing acts on a placement TCS lacks: a parked dead letter is reported (or retried), anything
// else started again (unless a dry run).
func (r *Reconciler) missing(ctx context.Context, req contract.ReconcileCheckRequest, m contract.PlacementExported) (string, string) {
	id := m.WorkflowID()
	if parked, err := Parked(ctx, r.Temporal, id); err == nil && parked {
		reason := "(state query failed)"
		if st, err := QueryState(ctx, r.Temporal, id); err == nil {
			reason = st.LastError
		}
		if req.Input.DryRun || !req.Input.RetryDeadLetters {
			return contract.ReconcileDeadLettered, reason
		}
		// The request ID makes a batch asked for twice (a worker killed mid-batch) retry once.
		err := r.Temporal.SignalWorkflow(ctx, id, "", contract.SignalRetry, contract.SignalPayload{
			Reason: req.Input.Reason, By: req.Input.By, Job: req.JobID, RequestID: req.JobID + "/" + id})
		if err != nil {
			return contract.ReconcileStartFailed, "retry signal: " + err.Error()
		}
		return contract.ReconcileRetried, reason
	}
	if req.Input.DryRun {
		return contract.ReconcileMissing, ""
	}
	origin := fmt.Sprintf("started by reconcile job %s (by %s): TCS lacks the EXPORTED event", req.JobID, req.Input.By)
	runID, err := startAgain(ctx, r.Temporal, m, origin)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &already) && r.startedBy(ctx, id, already.RunId, req.JobID):
		return contract.ReconcileStarted, "run " + already.RunId // this job's own start, asked for again
	case errors.As(err, &already):
		return contract.ReconcileRunning, "run " + already.RunId
	case err != nil:
		return contract.ReconcileStartFailed, "start: " + err.Error()
	}
	return contract.ReconcileStarted, "run " + runID
}

// startedBy reports whether run runID of id says job started it.
func (r *Reconciler) startedBy(ctx context.Context, id, runID, job string) bool {
	d, err := r.Temporal.DescribeWorkflowExecution(ctx, id, runID)
	if err != nil {
		return false
	}
	return strings.Contains(detailsOf(d.GetExecutionConfig().GetUserMetadata().GetDetails()), " "+job+" ")
}

// startAgain starts a record anew: a new run of its workflow ID even where a closed run exists (its
// write did not stick), at recovery priority (behind fresh records here and at the TCS cap), its
// history saying who started it and why. A run already open is left to it
// (*serviceerror.WorkflowExecutionAlreadyStarted).
func startAgain(ctx context.Context, c client.Client, msg contract.Message, origin string) (string, error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       msg.WorkflowID(),
		TaskQueue:                                contract.TaskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Priority:                                 temporal.Priority{PriorityKey: contract.RecoveryPriority},
		StaticSummary:                            msg.Summary(),
		StaticDetails:                            origin,
		TypedSearchAttributes: temporal.NewSearchAttributes(contract.KindKey.ValueSet(string(msg.Kind())),
			contract.RecordIDKey.ValueSet(msg.RecordID()), contract.StateKey.ValueSet(contract.StateUpdating)),
	}, msg.Kind().Spec().WorkflowType, msg)
	if err != nil {
		return "", err
	}
	return run.GetRunID(), nil
}

func detailsOf(p *commonpb.Payload) string {
	var s string
	if p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
	}
	return s
}
