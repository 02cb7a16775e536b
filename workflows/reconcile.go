package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
)

// Reconcile is a reconcile job (contract.ReconcileWorkflowType): batch after batch, each batch's
// outcomes kept in the report before the next is asked for, so a restart neither repeats nor loses
// one. Placements whose read the TCS guard did not send (a hold, outage mode, the cap's queue) wait
// and are asked for again: the job is paced by the cap and stops while TCS is held. A long hold
// continues it as new, carrying the report and the placements left.
func Reconcile(ctx workflow.Context, in contract.ReconcileInput) (contract.ReconcileReport, error) {
	r, err := setupReconcile(ctx, in)
	if err != nil {
		return contract.ReconcileReport{}, err
	}
	return r.run(ctx)
}

type reconcile struct {
	in      contract.ReconcileInput
	report  contract.ReconcileReport
	pending []contract.PlacementExported
	// waits counts the refusals in a row: the wait before asking again doubles with each.
	waits int
}

func setupReconcile(ctx workflow.Context, in contract.ReconcileInput) (*reconcile, error) {
	r := &reconcile{in: in}
	if in.Report != nil {
		r.report, r.pending = *in.Report, in.Placements
	} else {
		r.report = contract.ReconcileReport{ID: workflow.GetInfo(ctx).WorkflowExecution.ID, State: contract.ReconcileJobRunning,
			By: in.By, Reason: in.Reason, DryRun: in.DryRun, StartedAt: workflow.Now(ctx).UTC().Format(time.RFC3339),
			Outcomes: []contract.ReconcileOutcome{}}
		r.pending, r.report.Duplicates = distinctRecords(in.Placements)
		r.report.Total = len(r.pending)
	}
	r.in.Placements, r.in.Report = nil, nil // the settings each batch carries
	return r, workflow.SetQueryHandler(ctx, contract.QueryReconcile, func() (contract.ReconcileReport, error) { return r.report, nil })
}

func (r *reconcile) run(ctx workflow.Context) (contract.ReconcileReport, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    10 * time.Second, // a worker killed mid-batch: the batch is asked for again soon
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
		Summary:             "a batch of placements read in TCS, the missing ones started",
	})
	available := workflow.GetSignalChannel(ctx, contract.SignalTCSAvailable)
	for len(r.pending) > 0 {
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			report := r.report
			next := r.in
			next.Placements, next.Report = r.pending, &report
			return r.report, workflow.NewContinueAsNewError(ctx, contract.ReconcileWorkflowType, next)
		}
		batch := r.pending[:min(len(r.pending), contract.ReconcileBatch)]
		var res contract.ReconcileCheckResult
		err := workflow.ExecuteActivity(actx, contract.ReconcileCheckActivity, contract.ReconcileCheckRequest{
			JobID: r.report.ID, Input: r.in, Placements: batch}).Get(ctx, &res)
		if err != nil {
			return r.report, err
		}
		rest := r.add(batch, res.Outcomes)
		r.pending = append(rest, r.pending[len(batch):]...)
		if len(rest) == 0 {
			r.waits = 0
			continue
		}
		r.report.Held++
		wait := min(contract.ReconcileHeldWait<<min(r.waits, 10), contract.ReconcileHeldWaitMax)
		r.waits++
		workflow.GetLogger(ctx).Info("the TCS guard sent none of some reads; asking again", "notChecked", len(rest), "why", res.NotSent,
			"wait", wait)
		if err := r.await(ctx, available, wait); err != nil {
			return r.report, err
		}
	}
	r.report.State = contract.ReconcileJobDone
	return r.report, nil
}

// add keeps the batch's outcomes (one per placement: a second one for the same record, never sent
// by the activity, is passed over) and returns the placements with none, in their order.
func (r *reconcile) add(batch []contract.PlacementExported, outcomes []contract.ReconcileOutcome) []contract.PlacementExported {
	inBatch := make(map[string]bool, len(batch))
	for _, m := range batch {
		inBatch[recordID(m)] = true
	}
	for _, o := range outcomes {
		if !inBatch[o.WorkflowID] {
			continue
		}
		inBatch[o.WorkflowID] = false
		if o.Outcome == contract.ReconcilePresent {
			r.report.Present++
		} else {
			r.report.Outcomes = append(r.report.Outcomes, o)
		}
	}
	var rest []contract.PlacementExported
	for _, m := range batch {
		if inBatch[recordID(m)] {
			rest = append(rest, m)
		}
	}
	return rest
}

// await waits d, or less when a worker's guard says TCS takes requests again.
func (r *reconcile) await(ctx workflow.Context, available workflow.ReceiveChannel, d time.Duration) error {
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	timer := workflow.NewTimer(tctx, d)
	sel := workflow.NewSelector(ctx)
	var err error
	sel.AddFuture(timer, func(f workflow.Future) { err = f.Get(ctx, nil) })
	sel.AddReceive(available, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	sel.Select(ctx)
	return err
}

// distinctRecords keeps the first placement of each record (workflow ID) and counts the others.
func distinctRecords(placements []contract.PlacementExported) ([]contract.PlacementExported, int) {
	seen := make(map[string]bool, len(placements))
	out := make([]contract.PlacementExported, 0, len(placements))
	for _, m := range placements {
		if id := recordID(m); !seen[id] {
			seen[id] = true
			out = append(out, m)
		}
	}
	return out, len(placements) - len(out)
}

// recordID is a placement's workflow ID. (fmt formats an integer deterministically; the checker sees
// reflection deep inside it.)
//
//workflowcheck:ignore
func recordID(m contract.PlacementExported) string { return m.WorkflowID() }
