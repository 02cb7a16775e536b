package workerapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
)

// LedgerScheduleOff turns the daily ledger's schedule off (LEDGER_SCHEDULE=off).
const LedgerScheduleOff = "off"

// EnsureLedgerSchedule creates the daily ledger's Temporal Schedule when it is missing: every worker
// tries at start, the first one creates it, and an operator's later changes (a pause, another time,
// report-only, in the UI or with `temporal schedule`) are left as they are.
func EnsureLedgerSchedule(ctx context.Context, c client.Client, cron string, reportOnly bool, log *slog.Logger) error {
	if cron == LedgerScheduleOff || cron == "" {
		return nil
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   contract.LedgerScheduleID,
		Spec: client.ScheduleSpec{CronExpressions: []string{cron}},
		Action: &client.ScheduleWorkflowAction{
			ID:        contract.LedgerScheduleID, // the schedule appends the time
			Workflow:  contract.LedgerWorkflowType,
			Args:      []any{contract.LedgerInput{ReportOnly: reportOnly}},
			TaskQueue: contract.TaskQueue,
			// Behind fresh records, at TCS too (its reads are recovery traffic).
			Priority:              temporal.Priority{PriorityKey: contract.RecoveryPriority},
			TypedSearchAttributes: temporal.NewSearchAttributes(contract.KindKey.ValueSet(contract.LedgerKind)),
			StaticSummary:         "the daily ledger: yesterday's records counted, their rows in TCS read again",
		},
		Overlap: 0, // skip a run while the last one still runs
		Note:    "created by a writeback worker (LEDGER_SCHEDULE)",
	})
	var exists *serviceerror.AlreadyExists
	switch {
	case err == nil:
		log.Info("created the daily ledger's schedule", "schedule", contract.LedgerScheduleID, "cron", cron, "reportOnly", reportOnly)
	case errors.As(err, &exists) || errors.Is(err, temporal.ErrScheduleAlreadyRunning):
		return nil
	default:
		return fmt.Errorf("the daily ledger's schedule %s: %w", contract.LedgerScheduleID, err)
	}
	return nil
}
