package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
)

// rolloutSettle is how long a record has to finish before a step counts it (records started later
// are judged at the next look): 15 s, less for a step shorter than a minute.
const rolloutSettle = 15 * time.Second

// Rollout takes a new worker build to current in ramp steps, judging each by the build's own records
// against the current build's over the same step (contract.RolloutWorkflowType). Its phases:
// waitingForWorkers → ramping (one per step, looked at every lookEvery: a build clearly worse is
// rolled back at once, mid-step) → promoting; or rollingBack from any step. Whatever ends it (a
// rollback, too few records to judge, an operator's cancel, routing that cannot be changed), no ramp
// is left behind that nobody watches.
func Rollout(ctx workflow.Context, in contract.RolloutInput) (contract.RolloutReport, error) {
	r, err := setupRollout(ctx, in)
	if err != nil {
		return contract.RolloutReport{}, err
	}
	return r.run(ctx)
}

type rollout struct {
	in     contract.RolloutInput
	report contract.RolloutReport
	// routed: a ramp may be in force (set once its first request was sent).
	routed bool
}

type rolloutPhase func(ctx workflow.Context) (rolloutPhase, error)

func setupRollout(ctx workflow.Context, in contract.RolloutInput) (*rollout, error) {
	in = in.WithDefaults()
	if err := in.Validate(); err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "bad-rollout", nil)
	}
	r := &rollout{in: in, report: contract.RolloutReport{ID: workflow.GetInfo(ctx).WorkflowExecution.ID, Deployment: in.Deployment,
		BuildID: in.BuildID, State: contract.RolloutWaiting, Steps: []contract.RolloutStep{}, By: in.By,
		StartedAt: workflow.Now(ctx).UTC()}}
	return r, workflow.SetQueryHandler(ctx, contract.QueryRollout, func() (contract.RolloutReport, error) { return r.report, nil })
}

// calls are the rollout's activities: a routing change is waited for even when the rollout is
// cancelled (its outcome decides what to undo), and given up after two minutes of failures (a
// refusal by the deployment, e.g. someone else made a build current).
func calls(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 2 * time.Minute,
		WaitForCancellation:    true,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 15 * time.Second},
	})
}

func (r *rollout) run(ctx workflow.Context) (contract.RolloutReport, error) {
	if err := r.publish(ctx); err != nil {
		return r.report, err
	}
	next := rolloutPhase(r.waitingForWorkers)
	for next != nil {
		var err error
		if next, err = next(ctx); err != nil {
			return r.undo(ctx, err)
		}
	}
	return r.report, nil
}

// waitingForWorkers waits for the build's first poll, and notes the build it replaces.
func (r *rollout) waitingForWorkers(ctx workflow.Context) (rolloutPhase, error) {
	deadline := workflow.Now(ctx).Add(r.in.WaitForWorkers)
	for {
		var rt contract.Routing
		if err := workflow.ExecuteActivity(calls(ctx), contract.RolloutDescribeActivity, r.in.Deployment).Get(ctx, &rt); err != nil {
			return nil, err
		}
		r.report.Previous = rt.Current
		switch {
		case rt.Current == r.in.BuildID:
			r.report.Percentage = 100
			return r.end(ctx, contract.RolloutPromoted, "already current")
		case rt.Current == "":
			return r.end(ctx, contract.RolloutNotStarted, "no versioned build is current: there is nothing to compare with "+
				"(make a build current first: versioning set-current)")
		case rt.Ramping != "" && rt.Ramping != r.in.BuildID:
			return r.end(ctx, contract.RolloutNotStarted, fmt.Sprintf("build %s is ramping: one ramp at a time", rt.Ramping))
		case slices.Contains(rt.Polling, r.in.BuildID):
			return r.ramping(0), nil
		case !workflow.Now(ctx).Before(deadline):
			return r.end(ctx, contract.RolloutNotStarted, fmt.Sprintf("no worker of build %s polled within %s: nothing was routed to it",
				r.in.BuildID, r.in.WaitForWorkers))
		}
		if err := workflow.Sleep(ctx, 5*time.Second); err != nil {
			return nil, err
		}
	}
}

// ramping runs step i: the build takes Steps[i] % of the records; it is looked at every lookEvery,
// rolled back as soon as it is clearly worse, and promoted to the next step (or current) when the
// step has run its time with enough records judged healthy. A quiet step is extended, up to three
// times; still too quiet, the ramp is removed (Inconclusive): a build is never promoted blind.
func (r *rollout) ramping(i int) rolloutPhase {
	return func(ctx workflow.Context) (rolloutPhase, error) {
		pct := r.in.Steps[i]
		if err := r.route(ctx, contract.RouteRequest{BuildID: r.in.BuildID, Percentage: pct}); err != nil {
			return nil, err
		}
		r.report.State, r.report.Percentage = contract.RolloutRamping, pct
		if err := r.publish(ctx); err != nil {
			return nil, err
		}
		step := contract.RolloutStep{Percentage: pct, StartedAt: workflow.Now(ctx).UTC()}
		lookEvery := min(30*time.Second, r.in.StepDuration/4)
		stepEnd := workflow.Now(ctx).Add(r.in.StepDuration)
		for extensions := 0; ; {
			if err := workflow.Sleep(ctx, lookEvery); err != nil {
				return nil, err
			}
			if err := r.judge(ctx, &step); err != nil {
				return nil, err
			}
			v := rolloutVerdict(r.in, pct, step.New, step.Current)
			ended := !workflow.Now(ctx).Before(stepEnd)
			switch {
			case v.bad && v.sure || v.bad && ended && v.enough:
				r.closeStep(step, "rolled back: "+v.why)
				return r.rollingBack(v.why), nil
			case !ended:
				continue
			case !v.enough && extensions < 3:
				extensions++ // the window grows: the step's records so far still count
				stepEnd = stepEnd.Add(r.in.StepDuration)
				continue
			case !v.enough:
				why := fmt.Sprintf("too few of its records to judge after %s (%d, %d needed): %s", workflow.Now(ctx).Sub(step.StartedAt).Round(time.Second),
					step.New.Records, r.in.MinRecords, v.why)
				r.closeStep(step, "inconclusive: "+why)
				return r.removingRamp(contract.RolloutInconclusive, why), nil
			}
			r.closeStep(step, "healthy: "+v.why)
			if i+1 < len(r.in.Steps) {
				return r.ramping(i + 1), nil
			}
			return r.promoting, nil
		}
	}
}

// closeStep keeps a judged step in the report.
func (r *rollout) closeStep(step contract.RolloutStep, verdict string) {
	step.Verdict = verdict
	r.report.Steps = append(r.report.Steps, step)
}

func (r *rollout) judge(ctx workflow.Context, step *contract.RolloutStep) error {
	now := workflow.Now(ctx).UTC()
	step.JudgedAt = now
	settle := min(rolloutSettle, r.in.StepDuration/4)
	for _, b := range []struct {
		build string
		into  *contract.BuildHealth
	}{{r.in.BuildID, &step.New}, {r.report.Previous, &step.Current}} {
		req := contract.JudgeRequest{Deployment: r.in.Deployment, BuildID: b.build, Since: step.StartedAt, Until: now.Add(-settle)}
		if err := workflow.ExecuteActivity(calls(ctx), contract.RolloutJudgeActivity, req).Get(ctx, b.into); err != nil {
			return err
		}
	}
	return nil
}

func (r *rollout) promoting(ctx workflow.Context) (rolloutPhase, error) {
	if err := r.route(ctx, contract.RouteRequest{BuildID: r.in.BuildID, Current: true}); err != nil {
		return nil, err
	}
	r.routed = false // current now: there is no ramp left to undo
	r.report.Percentage = 100
	return r.end(ctx, contract.RolloutPromoted, fmt.Sprintf("healthy at every step: build %s is current", r.in.BuildID))
}

func (r *rollout) rollingBack(why string) rolloutPhase {
	return func(ctx workflow.Context) (rolloutPhase, error) {
		workflow.GetLogger(ctx).Error("rollout rolled back", "deployment", r.in.Deployment, "build", r.in.BuildID, "why", why)
		return r.removingRamp(contract.RolloutRolledBack, why)(ctx)
	}
}

// removingRamp sends every record back to the current build and ends the rollout.
func (r *rollout) removingRamp(state, why string) rolloutPhase {
	return func(ctx workflow.Context) (rolloutPhase, error) {
		if err := r.route(ctx, contract.RouteRequest{}); err != nil {
			return nil, err
		}
		r.routed, r.report.Percentage = false, 0
		return r.end(ctx, state, why)
	}
}

// undo ends a rollout that an operator cancelled or whose routing failed: the ramp, if one may be in
// force, is removed (on a context the cancel does not reach) and the report says what happened.
func (r *rollout) undo(ctx workflow.Context, cause error) (contract.RolloutReport, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	state, why := contract.RolloutFailed, "the deployment's routing could not be changed: "+cause.Error()
	if temporal.IsCanceledError(cause) {
		state, why = contract.RolloutCancelled, "cancelled by an operator"
	}
	if r.routed {
		if err := r.route(dctx, contract.RouteRequest{}); err != nil {
			why += "; the ramp could not be removed: " + err.Error()
		} else {
			r.routed, r.report.Percentage, why = false, 0, why+": the ramp removed"
		}
	}
	if _, err := r.end(dctx, state, why); err != nil {
		return r.report, err
	}
	return r.report, cause
}

func (r *rollout) route(ctx workflow.Context, req contract.RouteRequest) error {
	req.Deployment, req.Identity = r.in.Deployment, "writeback rollout "+r.report.ID+" ("+r.in.By+")"
	if req.BuildID != "" && !req.Current {
		r.routed = true // sent: it may be in force whatever its answer
	}
	return workflow.ExecuteActivity(calls(ctx), contract.RolloutRouteActivity, req).Get(ctx, nil)
}

func (r *rollout) end(ctx workflow.Context, state, why string) (rolloutPhase, error) {
	r.report.State, r.report.Reason = state, why
	return nil, r.publish(ctx)
}

// publish keeps the report in the memo and its state in WritebackState: `versioning status`, the
// worker's metrics and the UI read them with no worker answering a query.
func (r *rollout) publish(ctx workflow.Context) error {
	if err := workflow.UpsertTypedSearchAttributes(ctx, contract.StateKey.ValueSet(r.report.State)); err != nil {
		return err
	}
	return workflow.UpsertMemo(ctx, map[string]any{contract.MemoRollout: r.report})
}

// verdict is a step's judgement: bad (worse than the current build by a threshold), sure (bad by
// enough records to act on before the step ends: sampling noise in a few records must not roll a
// good build back), enough (the build had MinRecords records to judge).
type verdict struct {
	bad, sure, enough bool
	why               string
}

// rolloutVerdict compares the new build's records with the current build's over a step. A build
// that takes far fewer records than its share (its workers crash, or never finish a workflow task,
// so the records it took show under no build) is as bad as one whose records dead-letter.
func rolloutVerdict(in contract.RolloutInput, pct float32, nb, cb contract.BuildHealth) verdict {
	dlNew, dlCur := nb.Ratio(nb.DeadLettered), cb.Ratio(cb.DeadLettered)
	unNew, unCur := nb.Ratio(nb.Unfinished), cb.Ratio(cb.Unfinished)
	summary := fmt.Sprintf("build %s: %d records, %.0f%% dead-lettered%s, %.0f%% unfinished; current build: %d records, %.0f%%%s, %.0f%%",
		in.BuildID, nb.Records, 100*dlNew, groups(nb), 100*unNew, cb.Records, 100*dlCur, groups(cb), 100*unCur)
	sure := max(3, in.MinRecords/4) // records beyond the current build's rate that make a mid-step rollback
	excess := func(part int, curRatio float64) int { return part - int(curRatio*float64(nb.Records)+0.5) }
	v := verdict{enough: nb.Records >= in.MinRecords, why: summary}
	switch {
	case dlNew > dlCur+in.MaxDeadLetterExcess:
		v.bad, v.sure, v.why = true, v.enough && excess(nb.DeadLettered, dlCur) >= sure,
			"its records dead-letter more than the current build's ("+summary+")"
	case unNew > unCur+in.MaxUnfinishedExcess:
		v.bad, v.sure, v.why = true, v.enough && excess(nb.Unfinished, unCur) >= sure,
			"its records do not finish as the current build's do ("+summary+")"
	default:
		// The build takes pct % of the records, the current build the rest: the current build's count
		// says what to expect. Far fewer means records go to it and show under no build.
		if expected := float64(cb.Records) * float64(pct) / float64(100-pct); expected >= 3*float64(in.MinRecords) &&
			float64(nb.Records) < expected/4 {
			v.bad, v.sure, v.why = true, true, fmt.Sprintf("its workers ran %d records where about %.0f were routed to it (%s)",
				nb.Records, expected, summary)
		}
	}
	return v
}

// groups is a build's dead letters by failure group, for a verdict: " (tcs-422 21)". (The groups are
// sorted before they are printed; the checker sees the map they are read from.)
//
//workflowcheck:ignore
func groups(h contract.BuildHealth) string {
	if f := h.FailureSummary(); f != "" {
		return " (" + f + ")"
	}
	return ""
}
