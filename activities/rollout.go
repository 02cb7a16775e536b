package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/tis-writeback/writeback/contract"
)

// Rollouts are a rollout's activities: the deployment's routing, and what a build's records came to.
type Rollouts struct {
	Temporal  client.Client
	Namespace string
	// oldVisibility: the server does not know TemporalUsedWorkerDeploymentVersions (before 1.30):
	// BuildIds says the same without the deployment's name.
	oldVisibility atomic.Bool
}

// Describe reads the deployment's current and ramping builds and the builds whose workers poll the
// task queue. A deployment no worker has registered yet has none of them.
func (r *Rollouts) Describe(ctx context.Context, deployment string) (contract.Routing, error) {
	var rt contract.Routing
	d, err := r.Temporal.WorkerDeploymentClient().GetHandle(deployment).Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
	case err != nil:
		return rt, err
	default:
		rc := d.Info.RoutingConfig
		if rc.CurrentVersion != nil {
			rt.Current = rc.CurrentVersion.BuildID
		}
		if rc.RampingVersion != nil {
			rt.Ramping, rt.RampingPercentage = rc.RampingVersion.BuildID, rc.RampingVersionPercentage
		}
	}
	tq, err := r.Temporal.DescribeTaskQueue(ctx, contract.TaskQueue, enums.TASK_QUEUE_TYPE_WORKFLOW)
	if err != nil {
		return rt, err
	}
	for _, p := range tq.GetPollers() {
		if o := p.GetDeploymentOptions(); o.GetDeploymentName() == deployment && !slices.Contains(rt.Polling, o.GetBuildId()) {
			rt.Polling = append(rt.Polling, o.GetBuildId())
		}
	}
	return rt, nil
}

// Route changes the deployment's routing (contract.RouteRequest).
func (r *Rollouts) Route(ctx context.Context, req contract.RouteRequest) error {
	h := r.Temporal.WorkerDeploymentClient().GetHandle(req.Deployment)
	var err error
	if req.Current {
		_, err = h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: req.BuildID, Identity: req.Identity})
	} else { // no build and 0 %: the ramp removed
		_, err = h.SetRampingVersion(ctx, client.WorkerDeploymentSetRampingVersionOptions{BuildID: req.BuildID, Percentage: req.Percentage,
			Identity: req.Identity})
	}
	return err
}

// Judge counts a build's records started in the window (those its workers ran a task of), the
// dead-lettered and the still unfinished among them.
func (r *Rollouts) Judge(ctx context.Context, req contract.JudgeRequest) (contract.BuildHealth, error) {
	h := contract.BuildHealth{BuildID: req.BuildID}
	if !req.Until.After(req.Since) {
		return h, nil
	}
	h, err := r.count(ctx, req, ranOn(req.Deployment, req.BuildID, r.oldVisibility.Load()))
	var invalid *serviceerror.InvalidArgument
	if errors.As(err, &invalid) && strings.Contains(err.Error(), "TemporalUsedWorkerDeploymentVersions") && !r.oldVisibility.Load() {
		r.oldVisibility.Store(true)
		h, err = r.count(ctx, req, ranOn(req.Deployment, req.BuildID, true))
	}
	return h, err
}

func (r *Rollouts) count(ctx context.Context, req contract.JudgeRequest, ran string) (contract.BuildHealth, error) {
	h := contract.BuildHealth{BuildID: req.BuildID}
	base := fmt.Sprintf(`WritebackKind IN ("placement","scan") AND StartTime >= "%s" AND StartTime < "%s" AND %s`,
		req.Since.UTC().Format(time.RFC3339Nano), req.Until.UTC().Format(time.RFC3339Nano), ran)
	for _, c := range []struct {
		into  *int
		state string
	}{{&h.Records, ""}, {&h.DeadLettered, contract.StateDeadLettered}, {&h.Unfinished, contract.StateUpdating}} {
		q := base
		if c.state != "" {
			q += fmt.Sprintf(` AND WritebackState = %q`, c.state)
		}
		resp, err := r.Temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: r.Namespace, Query: q})
		if err != nil {
			return h, err
		}
		*c.into = int(resp.GetCount())
	}
	if h.DeadLettered > 0 {
		r.failures(ctx, base, &h)
	}
	return h, nil
}

// failures tallies the dead letters of the window by failure group (the first 500 of them): what
// the verdict says, not what it decides, so a listing that fails leaves it out.
func (r *Rollouts) failures(ctx context.Context, base string, h *contract.BuildHealth) {
	resp, err := r.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: r.Namespace, PageSize: 500,
		Query: base + fmt.Sprintf(` AND WritebackState = %q`, contract.StateDeadLettered)})
	if err != nil {
		return
	}
	h.Failures = map[string]int{}
	for _, e := range resp.GetExecutions() {
		group := "unknown"
		if p, ok := e.GetSearchAttributes().GetIndexedFields()[contract.FailureKey.GetName()]; ok {
			_ = converter.GetDefaultDataConverter().FromPayload(p, &group)
		}
		h.Failures[group]++
	}
}

// ranOn is the visibility filter of the records a build's workers ran a task of (Temporal keeps
// every version that completed a workflow task, even after the record moved to another).
func ranOn(deployment, build string, old bool) string {
	switch {
	case build == "":
		return "TemporalWorkerDeploymentVersion IS NULL"
	case old:
		return fmt.Sprintf(`BuildIds = "versioned:%s"`, build)
	}
	return fmt.Sprintf(`TemporalUsedWorkerDeploymentVersions = "%s:%s"`, deployment, build)
}
