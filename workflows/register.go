package workflows

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
)

// RecordActivities are what the record workflows need from the worker (package activities
// implements them; the workflows know only their contract).
type RecordActivities interface {
	CurrentRetrySettings(ctx context.Context) (contract.RetrySettings, error)
	FirstPlacementAttempt(ctx context.Context, msg contract.PlacementExported) (contract.FirstAttempt, error)
	FirstScanAttempt(ctx context.Context, msg contract.ScanCompleted) (contract.FirstAttempt, error)
	UpdatePlacement(ctx context.Context, msg contract.PlacementExported) (contract.UpdateResult, error)
	UpdateScan(ctx context.Context, msg contract.ScanCompleted) (contract.UpdateResult, error)
	MarkPlacementFailed(ctx context.Context, dl contract.DeadLetter) (contract.MarkResult, error)
	MarkScanErrored(ctx context.Context, dl contract.DeadLetter) (contract.MarkResult, error)
	CheckPlacementWritten(ctx context.Context, msg contract.PlacementExported) (bool, error)
	CheckScanWritten(ctx context.Context, msg contract.ScanCompleted) (bool, error)
	ProbeTCS(ctx context.Context) (contract.ProbeResult, error)
}

// Register puts both workflow types and their activities on a worker under their contract names.
func Register(w worker.Registry, a RecordActivities) {
	w.RegisterWorkflowWithOptions(RecordPlacementExport, workflow.RegisterOptions{Name: contract.PlacementWorkflowType})
	w.RegisterWorkflowWithOptions(RecordScanResult, workflow.RegisterOptions{Name: contract.ScanWorkflowType})
	w.RegisterWorkflowWithOptions(TCSControl, workflow.RegisterOptions{Name: contract.TCSControlWorkflowType})
	w.RegisterActivityWithOptions(a.CurrentRetrySettings, activity.RegisterOptions{Name: contract.CurrentRetrySettingsName})
	w.RegisterActivityWithOptions(a.FirstPlacementAttempt, activity.RegisterOptions{Name: contract.FirstPlacementAttemptName})
	w.RegisterActivityWithOptions(a.FirstScanAttempt, activity.RegisterOptions{Name: contract.FirstScanAttemptName})
	w.RegisterActivityWithOptions(a.UpdatePlacement, activity.RegisterOptions{Name: contract.UpdatePlacementName})
	w.RegisterActivityWithOptions(a.UpdateScan, activity.RegisterOptions{Name: contract.UpdateScanName})
	w.RegisterActivityWithOptions(a.MarkPlacementFailed, activity.RegisterOptions{Name: contract.MarkPlacementFailedName})
	w.RegisterActivityWithOptions(a.MarkScanErrored, activity.RegisterOptions{Name: contract.MarkScanErroredName})
	w.RegisterActivityWithOptions(a.CheckPlacementWritten, activity.RegisterOptions{Name: contract.CheckPlacementWrittenName})
	w.RegisterActivityWithOptions(a.CheckScanWritten, activity.RegisterOptions{Name: contract.CheckScanWrittenName})
	w.RegisterWorkflowWithOptions(Probe, workflow.RegisterOptions{Name: contract.ProbeWorkflowType})
	w.RegisterActivityWithOptions(a.ProbeTCS, activity.RegisterOptions{Name: contract.ProbeTCSName})
}

// JobActivities are what a retry job's workflow needs from the worker.
type JobActivities interface {
	SendRequests(ctx context.Context, req contract.SendRequest) ([]contract.Sent, error)
	AwaitOutcomes(ctx context.Context, req contract.AwaitRequest) ([]contract.JobOutcome, error)
}

// RegisterJobs puts the retry-job workflow and its activities on a worker.
func RegisterJobs(w worker.Registry, j JobActivities) {
	w.RegisterWorkflowWithOptions(RetryJob, workflow.RegisterOptions{Name: contract.RetryJobWorkflowType})
	w.RegisterActivityWithOptions(j.SendRequests, activity.RegisterOptions{Name: contract.SendRequestsActivity})
	w.RegisterActivityWithOptions(j.AwaitOutcomes, activity.RegisterOptions{Name: contract.AwaitOutcomesActivity})
}

// LedgerActivities are what the daily ledger needs from the worker.
type LedgerActivities interface {
	Page(ctx context.Context, req contract.LedgerPageRequest) (contract.LedgerPage, error)
}

// RegisterLedger puts the daily ledger's workflow and activity on a worker.
func RegisterLedger(w worker.Registry, l LedgerActivities) {
	w.RegisterWorkflowWithOptions(Ledger, workflow.RegisterOptions{Name: contract.LedgerWorkflowType})
	w.RegisterActivityWithOptions(l.Page, activity.RegisterOptions{Name: contract.LedgerPageActivity})
}

// ReconcileActivities are what a reconcile job needs from the worker.
type ReconcileActivities interface {
	Check(ctx context.Context, req contract.ReconcileCheckRequest) (contract.ReconcileCheckResult, error)
}

// RegisterReconcile puts the reconcile job's workflow and activity on a worker.
func RegisterReconcile(w worker.Registry, r ReconcileActivities) {
	w.RegisterWorkflowWithOptions(Reconcile, workflow.RegisterOptions{Name: contract.ReconcileWorkflowType})
	w.RegisterActivityWithOptions(r.Check, activity.RegisterOptions{Name: contract.ReconcileCheckActivity})
}

// RolloutActivities are what a rollout needs from the worker.
type RolloutActivities interface {
	Describe(ctx context.Context, deployment string) (contract.Routing, error)
	Route(ctx context.Context, req contract.RouteRequest) error
	Judge(ctx context.Context, req contract.JudgeRequest) (contract.BuildHealth, error)
}

// RegisterRollout puts the rollout's workflow and activities on a worker.
func RegisterRollout(w worker.Registry, r RolloutActivities) {
	w.RegisterWorkflowWithOptions(Rollout, workflow.RegisterOptions{Name: contract.RolloutWorkflowType})
	w.RegisterActivityWithOptions(r.Describe, activity.RegisterOptions{Name: contract.RolloutDescribeActivity})
	w.RegisterActivityWithOptions(r.Route, activity.RegisterOptions{Name: contract.RolloutRouteActivity})
	w.RegisterActivityWithOptions(r.Judge, activity.RegisterOptions{Name: contract.RolloutJudgeActivity})
}
