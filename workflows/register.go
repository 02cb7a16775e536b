package workflows

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/activities"
)

// Register puts both workflow types and their activities on a worker under their contract names.
func Register(w worker.Registry, a *activities.Activities) {
	w.RegisterWorkflowWithOptions(RecordPlacementExport, workflow.RegisterOptions{Name: PlacementWorkflowType})
	w.RegisterWorkflowWithOptions(RecordScanResult, workflow.RegisterOptions{Name: ScanWorkflowType})
	w.RegisterWorkflowWithOptions(TCSControl, workflow.RegisterOptions{Name: TCSControlWorkflowType})
	w.RegisterActivityWithOptions(a.CurrentRetrySettings, activity.RegisterOptions{Name: activities.CurrentRetrySettingsName})
	w.RegisterActivityWithOptions(a.FirstPlacementAttempt, activity.RegisterOptions{Name: activities.FirstPlacementAttemptName})
	w.RegisterActivityWithOptions(a.FirstScanAttempt, activity.RegisterOptions{Name: activities.FirstScanAttemptName})
	w.RegisterActivityWithOptions(a.UpdatePlacement, activity.RegisterOptions{Name: activities.UpdatePlacementName})
	w.RegisterActivityWithOptions(a.UpdateScan, activity.RegisterOptions{Name: activities.UpdateScanName})
	w.RegisterActivityWithOptions(a.MarkPlacementFailed, activity.RegisterOptions{Name: activities.MarkPlacementFailedName})
	w.RegisterActivityWithOptions(a.MarkScanErrored, activity.RegisterOptions{Name: activities.MarkScanErroredName})
	w.RegisterActivityWithOptions(a.CheckPlacementWritten, activity.RegisterOptions{Name: activities.CheckPlacementWrittenName})
	w.RegisterActivityWithOptions(a.CheckScanWritten, activity.RegisterOptions{Name: activities.CheckScanWrittenName})
}

// JobActivities are what a retry job's workflow needs from the worker.
type JobActivities interface {
	SignalBatch(ctx context.Context, req BatchRequest) (BatchResult, error)
	AwaitOutcomes(ctx context.Context, req AwaitRequest) ([]JobOutcome, error)
}

// RegisterJobs puts the retry-job workflow and its activities on a worker.
func RegisterJobs(w worker.Registry, j JobActivities) {
	w.RegisterWorkflowWithOptions(RetryJob, workflow.RegisterOptions{Name: RetryJobWorkflowType})
	w.RegisterActivityWithOptions(j.SignalBatch, activity.RegisterOptions{Name: SignalBatchActivity})
	w.RegisterActivityWithOptions(j.AwaitOutcomes, activity.RegisterOptions{Name: AwaitOutcomesActivity})
}
