package ops

import (
	"context"
	"sync"

	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/operate"
	"github.com/tis-writeback/writeback/starter/intake"
	"github.com/tis-writeback/writeback/tcs"
)

// DeadLetters tells reconcile how to treat a missing placement whose workflow is parked as a dead
// letter: it is reported with its reason, and retried when Retry is set.
type DeadLetters struct {
	Client  client.Client // nil: not looked at (dry run without Temporal)
	Retry   bool
	Payload contract.SignalPayload
}

// ReconcileSummary counts what reconcile found and did.
type ReconcileSummary struct {
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

// Reconcile asks TCS, for each exported placement, whether it holds the EXPORTED event for that
// file, and starts a workflow for exactly the missing ones: a new run even where a closed run of
// the same ID exists (its write did not stick). Running it twice is harmless: the second finds
// them present, or running.
func Reconcile(ctx context.Context, tc *tcs.Client, starter intake.Starter, placements []contract.PlacementExported,
	dryRun bool, concurrency int, dl DeadLetters, progress func(int)) ReconcileSummary {
	sum := ReconcileSummary{Failures: map[string]string{}, DeadLetterReasons: map[string]string{}}
	var mu sync.Mutex
	if concurrency <= 0 {
		concurrency = 8
	}
	operate.ForEach(placements, concurrency, func(m contract.PlacementExported) {
		outcome, detail := reconcileOne(ctx, tc, starter, m, dryRun, dl)
		mu.Lock()
		defer mu.Unlock()
		sum.Checked++
		switch outcome {
		case "present":
			sum.Present++
		case "unknown":
			sum.Unknown++
			sum.UnknownIDs = append(sum.UnknownIDs, m.WorkflowID())
		case "failed":
			sum.Failed++
			sum.Failures[m.WorkflowID()] = detail
		default: // missing: started, running, or dry run
			sum.Missing++
			sum.MissingIDs = append(sum.MissingIDs, m.WorkflowID())
			switch outcome {
			case "started":
				sum.Started++
			case "running":
				sum.Running++
			case "dead-lettered", "retried":
				sum.DeadLettered++
				sum.DeadLetterReasons[m.WorkflowID()] = detail
				if outcome == "retried" {
					sum.Retried++
				}
			case "start-failed":
				sum.Failed++
				sum.Failures[m.WorkflowID()] = detail
			}
		}
		if progress != nil {
			progress(sum.Checked)
		}
	})
	return sum
}

func reconcileOne(ctx context.Context, tc *tcs.Client, starter intake.Starter, m contract.PlacementExported, dryRun bool,
	dl DeadLetters) (string, string) {
	p, err := tc.GetPlacement(ctx, m.PlacementID)
	if tcs.IsNotFound(err) {
		return "unknown", ""
	}
	if err != nil {
		return "failed", err.Error()
	}
	for _, ev := range p.ESREvents {
		if ev.Status == tcs.StatusExported && ev.Filename == m.Filename {
			return "present", ""
		}
	}
	if reason, parked := deadLettered(ctx, dl.Client, m.WorkflowID()); parked {
		if dryRun || !dl.Retry {
			return "dead-lettered", reason
		}
		err := dl.Client.SignalWorkflow(ctx, m.WorkflowID(), "", contract.SignalRetry, dl.Payload)
		if err != nil {
			return "start-failed", "retry signal: " + err.Error()
		}
		return "retried", reason
	}
	if dryRun {
		return "missing", ""
	}
	started, err := starter.Start(ctx, intake.RecordOf(m))
	switch {
	case err != nil:
		return "start-failed", err.Error()
	case started:
		return "started", ""
	default:
		return "running", "" // a run of this ID is open: it is writing the record now
	}
}

// deadLettered reports whether the open run of id is parked as a dead letter, with its last error.
func deadLettered(ctx context.Context, c client.Client, id string) (string, bool) {
	if c == nil {
		return "", false
	}
	if parked, err := operate.Parked(ctx, c, id); err != nil || !parked {
		return "", false
	}
	st, err := operate.QueryState(ctx, c, id)
	if err != nil {
		return "(state query failed: " + err.Error() + ")", true
	}
	return st.LastError, true
}
