package ops

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
)

// ReconcileSummary counts what the reconcile jobs found and did.
type ReconcileSummary struct {
	Jobs                                                         []string
	Checked, Present, Missing, Started, Running, Unknown, Failed int
	// DeadLettered counts missing placements whose workflow is parked as a dead letter; Retried
	// those of them that were sent a retry.
	DeadLettered, Retried int
	// DeadLetterReasons maps their workflow IDs to their last error.
	DeadLetterReasons map[string]string
	// MissingIDs are the workflow IDs of the placements TCS lacks an EXPORTED event for.
	MissingIDs []string
	// UnknownIDs are placements TCS does not know (404): reported, not started.
	UnknownIDs []string
	Failures   map[string]string
}

// Dedupe keeps the first placement of each record (workflow ID), naming the lines dropped.
func Dedupe(placements []contract.PlacementExported) ([]contract.PlacementExported, []string) {
	seen := map[string]bool{}
	var out []contract.PlacementExported
	var dropped []string
	for _, m := range placements {
		if id := m.WorkflowID(); seen[id] {
			dropped = append(dropped, id+": the same placement and file as an earlier line")
			continue
		} else {
			seen[id] = true
		}
		out = append(out, m)
	}
	return out, dropped
}

// ReconcileJobs splits the placements into the inputs of jobs of at most contract.ReconcileJobSize.
func ReconcileJobs(placements []contract.PlacementExported, in contract.ReconcileInput) []contract.ReconcileInput {
	var jobs []contract.ReconcileInput
	for len(placements) > 0 {
		n := min(len(placements), contract.ReconcileJobSize)
		j := in
		j.Placements = placements[:n:n]
		jobs = append(jobs, j)
		placements = placements[n:]
	}
	return jobs
}

// StartReconcile starts a job per input, behind fresh records. The jobs run in the workers: they read
// TCS through the workers' guard, so the CLI holds no TCS token.
func StartReconcile(ctx context.Context, c client.Client, jobs []contract.ReconcileInput, now time.Time, suffix string) ([]client.WorkflowRun, error) {
	var runs []client.WorkflowRun
	for i, in := range jobs {
		id := fmt.Sprintf("writeback-reconcile-%s-%s-%d", now.UTC().Format("20060102-150405"), suffix, i+1)
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: id, TaskQueue: contract.TaskQueue,
			Priority: temporal.Priority{PriorityKey: contract.RecoveryPriority},
			StaticSummary: fmt.Sprintf("reconcile %d placements of %s (job %d of %d)", len(in.Placements), in.Source, i+1,
				len(jobs)),
			StaticDetails: fmt.Sprintf("by %s: %s", in.By, in.Reason),
			TypedSearchAttributes: temporal.NewSearchAttributes(contract.KindKey.ValueSet(contract.ReconcileKind),
				contract.RecordIDKey.ValueSet(in.Source)),
		}, contract.ReconcileWorkflowType, in)
		if err != nil {
			return runs, fmt.Errorf("cannot start reconcile job %s: %w", id, err)
		}
		runs = append(runs, run)
	}
	return runs, nil
}

// Summarize merges the jobs' reports.
func Summarize(reports []contract.ReconcileReport) ReconcileSummary {
	sum := ReconcileSummary{Failures: map[string]string{}, DeadLetterReasons: map[string]string{}}
	for _, r := range reports {
		sum.Jobs = append(sum.Jobs, r.ID)
		sum.Checked += r.Present
		sum.Present += r.Present
		for _, o := range r.Outcomes {
			sum.Checked++
			switch o.Outcome {
			case contract.ReconcilePresent:
				sum.Present++
			case contract.ReconcileUnknown:
				sum.Unknown++
				sum.UnknownIDs = append(sum.UnknownIDs, o.WorkflowID)
			case contract.ReconcileFailed:
				sum.Failed++
				sum.Failures[o.WorkflowID] = o.Detail
			default: // missing: started, running, dead-lettered, not started, or a dry run
				sum.Missing++
				sum.MissingIDs = append(sum.MissingIDs, o.WorkflowID)
				switch o.Outcome {
				case contract.ReconcileStartFailed:
					sum.Failed++
					sum.Failures[o.WorkflowID] = o.Detail
				case contract.ReconcileStarted:
					sum.Started++
				case contract.ReconcileRunning:
					sum.Running++
				case contract.ReconcileDeadLettered, contract.ReconcileRetried:
					sum.DeadLettered++
					sum.DeadLetterReasons[o.WorkflowID] = o.Detail
					if o.Outcome == contract.ReconcileRetried {
						sum.Retried++
					}
				}
			}
		}
	}
	return sum
}
