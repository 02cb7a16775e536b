package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/bench/report"
	"github.com/tis-writeback/writeback/bench/stack"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// runLedger measures the daily ledger over a day of records: the time it takes at the TCS cap, the
// TCS requests per record it makes, and its history's size; some rows are removed from the simulator
// first, and the ledger must write each back once.
func runLedger(args []string) int {
	fs := flag.NewFlagSet("ledger", flag.ExitOnError)
	n := fs.Int("records", 10000, "records of the day (placements, completed before the ledger)")
	drift := fs.Int("drift", 100, "of them, rows removed from TCS after they completed")
	rate := fs.Float64("tcs-rate", 100, "TCS_RATE of the worker (the cap the ledger reads under)")
	out := fs.String("out", "BENCHMARKS.md", "report file")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root, _ := os.Getwd()
	logf := func(format string, a ...any) { fmt.Printf(time.Now().Format("15:04:05 ")+format+"\n", a...) }

	st, tc, done, err := protectStack(ctx, root, 1, *rate, []string{"TCS_IDEMPOTENCY_KEY_HONOURED=true", "LEDGER_SCHEDULE=off"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer done()
	row, err := measureLedger(ctx, st, tc, *n, *drift, logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledger run:", err)
		return 1
	}
	body := fmt.Sprintf(`## The daily ledger

Command: bin/harness ledger%s. One worker process (TCS_RATE %.0f, the key honoured), the dev server and the
TCS simulator on this machine; %d placements completed, then %d of their rows removed from the simulator
(drift), then one ledger of the day, not report-only.

| records | drift | ledger took | reads/s (cap %.0f) | TCS requests per record | Temporal calls per record | ledger history events | drift found | written back once |
|---|---|---|---|---|---|---|---|---|
%s
`, strings.TrimRight(" "+strings.Join(args, " "), " "), *rate, *n, *drift, *rate, row)
	if err := report.WriteSection(*out, "ledger", body); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	fmt.Print(body)
	return 0
}

func measureLedger(ctx context.Context, st *stack.Stack, tc client.Client, n, drift int, logf func(string, ...any)) (string, error) {
	const file = "LEDGER.DAT"
	logf("starting %d records", n)
	if err := startAll(ctx, tc, 1, n, file); err != nil {
		return "", err
	}
	if err := waitState(ctx, tc, contract.StateCompleted, n, 30*time.Minute); err != nil {
		return "", err
	}
	logf("%d completed; removing %d rows", n, drift)
	for i := 0; i < drift; i++ {
		id := 1 + int64(i)*int64(n/max(drift, 1))
		req, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("http://%s/admin/events?placementId=%d", st.TCSAdmin, id), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
	}
	var before sim.Stats
	if err := stack.AdminGet(st.TCSAdmin, "/admin/stats", &before); err != nil {
		return "", err
	}
	day := time.Now().UTC().Format(contract.LedgerDayLayout)
	t0 := time.Now()
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.LedgerWorkflowID(day, t0, "bench"), TaskQueue: contract.TaskQueue,
		Priority:              temporal.Priority{PriorityKey: contract.RecoveryPriority},
		TypedSearchAttributes: temporal.NewSearchAttributes(contract.KindKey.ValueSet(contract.LedgerKind), contract.RecordIDKey.ValueSet(day))},
		contract.LedgerWorkflowType, contract.LedgerInput{Day: day, By: "bench"})
	if err != nil {
		return "", err
	}
	var rep contract.LedgerReport
	if err := run.Get(ctx, &rep); err != nil {
		return "", err
	}
	took := time.Since(t0)
	logf("ledger: %s, checked %d, drift %d, repaired %d", took.Round(time.Second), rep.Checked, rep.Drift, rep.Repaired)
	var after sim.Stats
	if err := stack.AdminGet(st.TCSAdmin, "/admin/stats", &after); err != nil {
		return "", err
	}
	gets := sum(after.Requests["GET placement"]) - sum(before.Requests["GET placement"])
	events := 0
	it := tc.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		if _, err := it.Next(); err != nil {
			return "", err
		}
		events++
	}
	// The records written again complete; each row is back once.
	if err := waitState(ctx, tc, contract.StateCompleted, n, 5*time.Minute); err != nil {
		return "", err
	}
	once := 0
	for i := 0; i < drift; i++ {
		id := 1 + int64(i)*int64(n/max(drift, 1))
		var evs []sim.Event
		if err := stack.AdminGet(st.TCSAdmin, fmt.Sprintf("/admin/events?placementId=%d", id), &evs); err == nil {
			exported := 0
			for _, e := range evs {
				if e.Status == "EXPORTED" && e.Filename == file {
					exported++
				}
			}
			if exported == 1 {
				once++
			}
		}
	}
	// Per record: a history read (the record's message) and a describe (is it its record's latest run).
	return fmt.Sprintf("| %d | %d | %s | %.0f | %.2f (reads) | 2 | %d | %d | %d of %d |", n, drift, took.Round(time.Second),
		float64(gets)/took.Seconds(), float64(gets)/float64(n), events, rep.Drift, once, drift), nil
}

func sum(m map[string]int) int {
	t := 0
	for _, v := range m {
		t += v
	}
	return t
}
