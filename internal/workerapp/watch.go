package workerapp

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	enums "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tis-writeback/writeback/contract"
)

// Watch keeps the worker's gauges of what is stuck, read from Temporal every Every: records that stall,
// the oldest parked dead letter, the last ledger's drift and when a ledger last finished. Every worker
// keeps them alike (the alerts take the max).
type Watch struct {
	Temporal      client.Client
	Every         time.Duration
	StallAfter    time.Duration
	ParkingPeriod time.Duration
	Log           *slog.Logger
	m             watchMetrics
}

type watchMetrics struct {
	stalled, oldest, parking, drift, ledgerDone, rolledBack prometheus.Gauge
}

// NewWatch registers the gauges, each at 0 from start-up.
func NewWatch(reg prometheus.Registerer, c *Config, log *slog.Logger) *Watch {
	g := func(name, help string) prometheus.Gauge {
		x := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(x)
		return x
	}
	// Every 30 s, or oftener for a short stall threshold (a test's): a stall shows within its threshold.
	every := min(30*time.Second, max(c.StallAfter/2, time.Second))
	w := &Watch{Every: every, StallAfter: c.StallAfter, ParkingPeriod: c.Retry.ParkingPeriod, Log: log, m: watchMetrics{
		stalled: g(contract.MetricStalledRecords, "Records Updating for longer than STALL_AFTER with no TCS request made for them: "+
			"their workflow task waits for a worker that never takes it, or TCS has been held that long."),
		oldest: g(contract.MetricOldestDeadLetterAge, "Seconds since the oldest parked dead letter was dead-lettered (0: none)."),
		parking: g("writeback_dead_letter_parking_period_seconds",
			"The parking period: a dead letter older than this closes without retry (the expiry alert warns before)."),
		drift:      g(contract.MetricLedgerDrift, "Records the last finished ledger found drifted: TCS no longer held their rows as written."),
		ledgerDone: g("writeback_ledger_last_finished_timestamp_seconds", "When a ledger last finished (Unix time; 0: never)."),
		rolledBack: g(contract.MetricRolloutRolledBack, "1 when the last finished rollout of a worker build rolled it back (its records "+
			"did worse than the current build's), until the next rollout finishes."),
	}}
	w.m.parking.Set(c.Retry.ParkingPeriod.Seconds())
	return w
}

// Run reads every Every until ctx ends.
func (w *Watch) Run(ctx context.Context, c client.Client) {
	w.Temporal = c
	t := time.NewTicker(w.Every)
	defer t.Stop()
	for {
		w.look(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Watch) look(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.Every)
	defer cancel()
	for name, f := range map[string]func(context.Context) error{"stalled records": w.stalled,
		"oldest dead letter": w.oldestDeadLetter, "ledger": w.ledger, "rollout": w.rollout} {
		if err := f(ctx); err != nil && ctx.Err() == nil {
			w.Log.Warn("could not read Temporal for a metric; it keeps its last value", "metric", name, "error", err.Error())
		}
	}
}

// stalled counts the records Updating for longer than StallAfter with no TCS request made for them:
// their pending workflow task has waited that long (no worker of the build that gets them polls), or
// TCS has been on hold that long (no record sends anything).
func (w *Watch) stalled(ctx context.Context) error {
	since := time.Now().Add(-w.StallAfter)
	old, err := w.list(ctx, fmt.Sprintf(`%s=%q AND ExecutionStatus="Running" AND StartTime < %q`,
		contract.StateKey.GetName(), contract.StateUpdating, since.UTC().Format(time.RFC3339)), 1000)
	if err != nil {
		return err
	}
	if st, ok, err := w.tcsStatus(ctx); err == nil && ok && st.Held {
		if held, perr := time.Parse(time.RFC3339, st.Since); perr == nil && held.Before(since) {
			w.m.stalled.Set(float64(len(old)))
			return nil
		}
	}
	n := 0
	for _, e := range old[:min(len(old), 100)] { // a sample bounds the describes; the count is then a floor
		d, err := w.Temporal.DescribeWorkflowExecution(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId())
		if err != nil {
			return err
		}
		if wt := d.GetPendingWorkflowTask(); wt != nil && wt.GetState() == enums.PENDING_WORKFLOW_TASK_STATE_SCHEDULED &&
			wt.GetScheduledTime().AsTime().Before(since) {
			n++
		}
	}
	w.m.stalled.Set(float64(n))
	return nil
}

// oldestDeadLetter finds the parked dead letter dead-lettered longest ago. A record's dead-lettering
// is never before its workflow's start, so the records are asked (their state query) oldest start
// first, until a start is later than the oldest dead-lettering found.
func (w *Watch) oldestDeadLetter(ctx context.Context) error {
	parked, err := w.list(ctx, fmt.Sprintf(`%s=%q AND ExecutionStatus="Running"`, contract.StateKey.GetName(), contract.StateDeadLettered), 10000)
	if err != nil {
		return err
	}
	slices.SortFunc(parked, func(a, b *workflowpb.WorkflowExecutionInfo) int {
		return a.GetStartTime().AsTime().Compare(b.GetStartTime().AsTime())
	})
	var oldest time.Time
	for i, e := range parked {
		if i == 50 || !oldest.IsZero() && !e.GetStartTime().AsTime().Before(oldest) {
			break
		}
		v, err := w.Temporal.QueryWorkflow(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), contract.QueryState)
		if err != nil {
			continue
		}
		var st contract.Status
		if v.Get(&st) != nil {
			continue
		}
		if at, err := time.Parse(time.RFC3339Nano, st.DeadLetteredAt); err == nil && (oldest.IsZero() || at.Before(oldest)) {
			oldest = at
		}
	}
	age := 0.0
	if !oldest.IsZero() {
		age = time.Since(oldest).Seconds()
	}
	w.m.oldest.Set(age)
	return nil
}

// ledger reads the last finished ledger's drift and time from its memo.
func (w *Watch) ledger(ctx context.Context) error {
	var rep contract.LedgerReport
	last, err := w.lastClosed(ctx, contract.LedgerWorkflowType, `ExecutionStatus="Completed"`, contract.MemoLedger, &rep)
	if err != nil || last == nil {
		return err
	}
	w.m.drift.Set(float64(rep.Drift))
	w.m.ledgerDone.Set(float64(last.GetCloseTime().AsTime().Unix()))
	return nil
}

// rollout reads how the last finished rollout ended, from its memo.
func (w *Watch) rollout(ctx context.Context) error {
	var rep contract.RolloutReport
	last, err := w.lastClosed(ctx, contract.RolloutWorkflowType, `ExecutionStatus!="Running"`, contract.MemoRollout, &rep)
	if err != nil || last == nil {
		return err
	}
	v := 0.0
	if rep.State == contract.RolloutRolledBack {
		v = 1
	}
	w.m.rolledBack.Set(v)
	return nil
}

// lastClosed finds the workflow of type wfType matching status that closed last, and reads its memo
// field into v (nil: none closed yet).
func (w *Watch) lastClosed(ctx context.Context, wfType, status, memo string, v any) (*workflowpb.WorkflowExecutionInfo, error) {
	done, err := w.list(ctx, fmt.Sprintf(`WorkflowType=%q AND %s`, wfType, status), 100)
	if err != nil || len(done) == 0 {
		return nil, err
	}
	last := slices.MaxFunc(done, func(a, b *workflowpb.WorkflowExecutionInfo) int {
		return a.GetCloseTime().AsTime().Compare(b.GetCloseTime().AsTime())
	})
	if p, ok := last.GetMemo().GetFields()[memo]; ok {
		if err := converter.GetDefaultDataConverter().FromPayload(p, v); err != nil {
			return nil, err
		}
	}
	return last, nil
}

func (w *Watch) tcsStatus(ctx context.Context) (contract.TCSStatus, bool, error) {
	d, err := w.Temporal.DescribeWorkflowExecution(ctx, contract.TCSControlWorkflowID, "")
	if err != nil {
		return contract.TCSStatus{}, false, err
	}
	st, ok := contract.ReadTCSStatus(d.GetWorkflowExecutionInfo().GetMemo().GetFields())
	return st, ok, nil
}

// list reads up to limit executions matching q.
func (w *Watch) list(ctx context.Context, q string, limit int) ([]*workflowpb.WorkflowExecutionInfo, error) {
	var out []*workflowpb.WorkflowExecutionInfo
	var token []byte
	for {
		resp, err := w.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetExecutions()...)
		token = resp.GetNextPageToken()
		if len(token) == 0 || len(out) >= limit {
			return out, nil
		}
	}
}
