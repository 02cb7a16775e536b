package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
)

// ledgerPagesPerRun bounds a ledger run's history (a page is about six events): a day of 50,000
// records is 100 pages of 500, so it continues as new once, carrying its report and page token.
const ledgerPagesPerRun = 60

// Ledger checks one day of records (contract.LedgerWorkflowType): page after page, each page's
// counts and drift kept in the report before the next, so a restart resumes where it was.
func Ledger(ctx workflow.Context, in contract.LedgerInput) (contract.LedgerReport, error) {
	l, err := setupLedger(ctx, in)
	if err != nil {
		return contract.LedgerReport{}, err
	}
	return l.run(ctx, in.Token)
}

type ledger struct {
	in     contract.LedgerInput
	report contract.LedgerReport
}

func setupLedger(ctx workflow.Context, in contract.LedgerInput) (*ledger, error) {
	l := &ledger{in: in}
	info := workflow.GetInfo(ctx)
	if in.Report != nil {
		l.report = *in.Report
	} else {
		if l.in.Day == "" { // the schedule: the day before
			l.in.Day = workflow.Now(ctx).UTC().AddDate(0, 0, -1).Format(contract.LedgerDayLayout)
		}
		l.report = contract.LedgerReport{ID: info.WorkflowExecution.ID, Day: l.in.Day, State: contract.LedgerRunning,
			ReportOnly: in.ReportOnly, By: in.By, StartedAt: workflow.Now(ctx).UTC().Format(time.RFC3339),
			Counts: map[string]int{}, Records: []contract.LedgerDrift{}}
		if l.report.By == "" {
			l.report.By = "schedule " + contract.LedgerScheduleID
		}
		// The day is known now (a scheduled ledger starts without it): `ledger show DAY` finds it so.
		if err := workflow.UpsertTypedSearchAttributes(ctx, contract.KindKey.ValueSet(contract.LedgerKind),
			contract.RecordIDKey.ValueSet(l.in.Day)); err != nil {
			return nil, err
		}
	}
	return l, workflow.SetQueryHandler(ctx, contract.QueryLedger, func() (contract.LedgerReport, error) { return l.report, nil })
}

func (l *ledger) run(ctx workflow.Context, token []byte) (contract.LedgerReport, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    10 * time.Second, // a worker killed mid-page: the page is read again soon
		// A hold or an outage refuses its reads: the page is tried again until TCS takes them.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
		Summary:     "a page of the day's records, each Completed one read in TCS",
	})
	for pages := 0; ; pages++ {
		if pages == ledgerPagesPerRun {
			return l.report, workflow.NewContinueAsNewError(ctx, contract.LedgerWorkflowType,
				contract.LedgerInput{Day: l.in.Day, ReportOnly: l.in.ReportOnly, By: l.in.By, Report: &l.report, Token: token})
		}
		var page contract.LedgerPage
		err := workflow.ExecuteActivity(actx, contract.LedgerPageActivity, contract.LedgerPageRequest{
			LedgerID: l.report.ID, Day: l.in.Day, ReportOnly: l.in.ReportOnly, By: l.report.By, Token: token}).Get(ctx, &page)
		if err != nil {
			return l.report, err
		}
		l.add(page)
		if err := l.publish(ctx); err != nil {
			return l.report, err
		}
		if len(page.Next) == 0 {
			break
		}
		token = page.Next
	}
	l.report.State = contract.LedgerDone
	l.report.FinishedAt = workflow.Now(ctx).UTC().Format(time.RFC3339)
	return l.report, l.publish(ctx)
}

func (l *ledger) add(p contract.LedgerPage) {
	for _, k := range contract.LedgerOutcomes { // not a range over the map: workflow code stays deterministic
		if n := p.Counts[k]; n > 0 {
			l.report.Counts[k] += n
		}
	}
	l.report.Checked += p.Checked
	l.report.Repaired += p.Repaired
	l.report.Drift += len(p.Drift)
	for _, id := range p.Expired {
		if len(l.report.Expired) < contract.LedgerDriftListed {
			l.report.Expired = append(l.report.Expired, id)
		}
	}
	for _, d := range p.Drift {
		if len(l.report.Records) < contract.LedgerDriftListed {
			l.report.Records = append(l.report.Records, d)
		} else {
			l.report.NotListed++
		}
	}
}

// publish keeps the report, without its list of records (a memo is small), in the memo: the worker's
// drift metric and `ledger show` read it there with or without a worker running; the list is in the
// result once the ledger is done, and in its query while it runs.
func (l *ledger) publish(ctx workflow.Context) error {
	memo := l.report
	memo.Records, memo.Expired = nil, nil
	return workflow.UpsertMemo(ctx, map[string]any{contract.MemoLedger: memo})
}
