package ops

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/tis-writeback/writeback/contract"
)

// ParseSteps reads ramp steps: percentages, comma-separated ("10,50").
func ParseSteps(s string) ([]float32, error) {
	var out []float32
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "%")), 32)
		if err != nil {
			return nil, fmt.Errorf("steps %q: %q is not a percentage", s, f)
		}
		out = append(out, float32(p))
	}
	return out, nil
}

// ErrRolloutRunning is a rollout of the same deployment that is already running.
var ErrRolloutRunning = errors.New("a rollout of this deployment is already running (one ramp at a time)")

// StartRollout starts a rollout. It runs pinned to the build current when it starts: its own workflow
// tasks never go to the build it judges. A deployment with no versioned current build has nothing to
// compare with: refused.
func StartRollout(ctx context.Context, c client.Client, in contract.RolloutInput) (client.WorkflowRun, error) {
	opts := client.StartWorkflowOptions{
		ID: contract.RolloutWorkflowID(in.Deployment), TaskQueue: contract.TaskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("rollout of build %s (deployment %s)", in.BuildID, in.Deployment),
		StaticDetails:                            fmt.Sprintf("by %s: %s", in.By, in.Reason),
		TypedSearchAttributes: temporal.NewSearchAttributes(contract.KindKey.ValueSet(contract.RolloutKind),
			contract.RecordIDKey.ValueSet(in.Deployment+":"+in.BuildID), contract.StateKey.ValueSet(contract.RolloutWaiting)),
	}
	d, err := c.WorkerDeploymentClient().GetHandle(in.Deployment).Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", in.Deployment, err)
	}
	if cur := d.Info.RoutingConfig.CurrentVersion; cur == nil || cur.BuildID == "" {
		return nil, fmt.Errorf("deployment %s has no versioned current build to compare build %s with: make one current first (versioning set-current)",
			in.Deployment, in.BuildID)
	}
	if d.Info.RoutingConfig.CurrentVersion.BuildID != in.BuildID {
		opts.VersioningOverride = &client.PinnedVersioningOverride{Version: worker.WorkerDeploymentVersion{
			DeploymentName: in.Deployment, BuildID: d.Info.RoutingConfig.CurrentVersion.BuildID}}
	}
	run, err := c.ExecuteWorkflow(ctx, opts, contract.RolloutWorkflowType, in)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &already) {
		return nil, fmt.Errorf("%w: %s", ErrRolloutRunning, opts.ID)
	}
	return run, err
}

// LastRollout is the deployment's latest rollout as its memo shows it (nil: none, or Temporal did
// not answer).
func LastRollout(ctx context.Context, c client.Client, deployment string) *contract.RolloutReport {
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000,
		Query: fmt.Sprintf(`WorkflowType=%q`, contract.RolloutWorkflowType)})
	if err != nil {
		return nil
	}
	var last *contract.RolloutReport
	var lastStart time.Time
	for _, e := range resp.GetExecutions() {
		var rep contract.RolloutReport
		p, ok := e.GetMemo().GetFields()[contract.MemoRollout]
		if !ok || converter.GetDefaultDataConverter().FromPayload(p, &rep) != nil || rep.Deployment != deployment {
			continue
		}
		if start := e.GetStartTime().AsTime(); last == nil || start.After(lastStart) {
			last, lastStart = &rep, start
		}
	}
	return last
}

// Routing is the deployment's routing as Temporal has it: its current and ramping builds ("" for
// unversioned workers or none).
func Routing(ctx context.Context, c client.Client, deployment string) (contract.Routing, error) {
	d, err := c.WorkerDeploymentClient().GetHandle(deployment).Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	if err != nil {
		return contract.Routing{}, fmt.Errorf("deployment %s: %w", deployment, err)
	}
	var rt contract.Routing
	if v := d.Info.RoutingConfig.CurrentVersion; v != nil {
		rt.Current = v.BuildID
	}
	if v := d.Info.RoutingConfig.RampingVersion; v != nil {
		rt.Ramping, rt.RampingPercentage = v.BuildID, d.Info.RoutingConfig.RampingVersionPercentage
	}
	return rt, nil
}

// RolloutEnded: a rollout in this state has finished (promoted, rolled back, or given up).
func RolloutEnded(state string) bool {
	return state != contract.RolloutWaiting && state != contract.RolloutRamping && state != ""
}

// RolloutOf is the deployment's latest rollout, read from its workflow (not from visibility, which
// lags): its report as its memo last had it, and whether it is still running. nil: there was none.
func RolloutOf(ctx context.Context, c client.Client, deployment string) (*contract.RolloutReport, bool, error) {
	d, err := c.DescribeWorkflowExecution(ctx, contract.RolloutWorkflowID(deployment), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("rollout of deployment %s: %w", deployment, err)
	}
	info := d.GetWorkflowExecutionInfo()
	var rep contract.RolloutReport
	if p, ok := info.GetMemo().GetFields()[contract.MemoRollout]; ok {
		if err := converter.GetDefaultDataConverter().FromPayload(p, &rep); err != nil {
			return nil, false, fmt.Errorf("rollout of deployment %s: %w", deployment, err)
		}
	}
	if rep.ID == "" {
		rep.ID = contract.RolloutWorkflowID(deployment)
	}
	running := info.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING
	if !running && !RolloutEnded(rep.State) {
		// terminated or timed out before it could say how it ended
		rep.State, rep.Reason = contract.RolloutCancelled, "the rollout's workflow ended "+strings.ToLower(strings.TrimPrefix(info.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_"))
	}
	return &rep, running, nil
}
