package integration_test

import (
	"cmp"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
)

// tcs hold stops every request to TCS from every worker within 10 s, spends no budget, survives a
// worker restart, and release lets the records through; tcs rate changes the cap for all workers.
func TestTCSHoldReleaseAndRate(t *testing.T) {
	s := newStack(t, testenv.WorkerOptions{TCSTimeout: 500 * time.Millisecond,
		Retry: contract.RetrySettings{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: 2 * time.Second, Budget: 5 * time.Second, ParkingPeriod: time.Hour}})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address, "TCS_RATE=500"}

	out := starterCLI(t, bin, env, true, "tcs", "status", "--json")
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.Equal(t, "normal", st["mode"])

	out = starterCLI(t, bin, env, true, "tcs", "hold", "--reason", "TCS maintenance", "--by", "ops")
	require.Contains(t, out, "mode   hold")
	require.Eventually(t, func() bool {
		return len(s.worker.Logs.Lines("TCS mode changed", `"to":"hold"`, "TCS maintenance")) == 1
	},
		10*time.Second, 100*time.Millisecond, "within 10 s, logged with who and why")
	require.Contains(t, scrape(t, s.worker.Metrics), `writeback_tcs_mode{mode="hold"} 1`)
	held := time.Now().Unix()

	var runs []client.WorkflowRun
	for i := int64(0); i < 10; i++ {
		m := placement(400+i, "HOLD.DAT")
		runs = append(runs, s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m))
	}
	// A restarted worker is held too.
	s.worker.Stop()
	s.worker = testenv.StartWorker(t, s.tm, s.sim.URL(), testenv.WorkerOptions{TCSTimeout: 500 * time.Millisecond,
		Retry: contract.RetrySettings{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: 2 * time.Second, Budget: 5 * time.Second, ParkingPeriod: time.Hour}})
	time.Sleep(10 * time.Second) // twice the budget
	sent := 0
	for sec, n := range s.sim.Store.Timeline() {
		if sec > held {
			sent += n
		}
	}
	require.Zero(t, sent, "no request reached TCS during the hold")
	out = starterCLI(t, bin, env, true, "tcs", "status", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, "hold", st["mode"])
	require.Equal(t, "TCS maintenance", st["reason"])
	require.Equal(t, "ops", st["by"])
	require.NotEmpty(t, st["since"])

	starterCLI(t, bin, env, true, "tcs", "release", "--reason", "maintenance over", "--by", "ops")
	for _, run := range runs {
		require.Equal(t, contract.StateCompleted, result(t, run, time.Minute).State, "no budget was spent during the hold")
	}
	require.Empty(t, s.worker.Logs.Lines(`"level":"CRITICAL"`))

	out = starterCLI(t, bin, env, true, "tcs", "rate", "7", "--reason", "TCS is fragile", "--by", "ops")
	require.Contains(t, out, "rate   7 requests/s for all workers (tcs rate)")
	require.Eventually(t, func() bool { return strings.Contains(scrape(t, s.worker.Metrics), "writeback_tcs_rate_limit 7\n") },
		10*time.Second, 100*time.Millisecond)
	out = starterCLI(t, bin, env, true, "tcs", "status", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, 7.0, st["rate"])
	require.Equal(t, "tcs rate", st["rateSource"])
	starterCLI(t, bin, env, true, "tcs", "rate", "--reset")
	require.Eventually(t, func() bool { return strings.Contains(scrape(t, s.worker.Metrics), "writeback_tcs_rate_limit 500\n") },
		10*time.Second, 100*time.Millisecond)
	out = starterCLI(t, bin, env, false, "tcs", "hold")
	require.Empty(t, out, "hold without a reason is refused")
}

// tcs rate N above the workers' own TCS_RATE is in force for every path, the regular activities too
// (recovery traffic runs as regular activities: no task-queue rate limit holds them, the guard owns
// the cap): raised from 2/s to 100/s, 40 recovery records reach TCS far faster than 2 requests a second.
func TestTCSRateAboveTheWorkersRateIsInForce(t *testing.T) {
	s := newStack(t, testenv.WorkerOptions{TCSRate: 2})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address, "TCS_RATE=2"}
	starterCLI(t, bin, env, true, "tcs", "rate", "100", "--reason", "drain the backlog", "--by", "ops")
	require.Eventually(t, func() bool { return strings.Contains(scrape(t, s.worker.Metrics), "writeback_tcs_rate_limit 100\n") },
		10*time.Second, 100*time.Millisecond)
	start := time.Now().Unix()
	var runs []client.WorkflowRun
	for i := int64(0); i < 40; i++ {
		m := placement(600+i, "RATE.DAT")
		run, err := s.tm.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: m.WorkflowID(),
			TaskQueue: contract.TaskQueue, Priority: temporal.Priority{PriorityKey: contract.RecoveryPriority}},
			contract.PlacementWorkflowType, m)
		require.NoError(t, err)
		runs = append(runs, run)
	}
	for _, run := range runs {
		require.Equal(t, contract.StateCompleted, result(t, run, 2*time.Minute).State)
	}
	first, last := int64(0), int64(0)
	for sec := range s.sim.Store.Timeline() {
		if sec >= start {
			first, last = cmp.Or(min(first, sec), sec), max(last, sec)
		}
	}
	// 80 requests (a read and a write each) at the workers' 2/s would take 40 s (the task queue's
	// own limit alone, 2 activities/s, 20 s); at 100/s they take a few seconds.
	require.LessOrEqual(t, last-first+1, int64(10), "the raised cap is in force for regular activities: %v", s.sim.Store.Timeline())
	starterCLI(t, bin, env, true, "tcs", "rate", "--reset")
	require.Eventually(t, func() bool { return strings.Contains(scrape(t, s.worker.Metrics), "writeback_tcs_rate_limit 2\n") },
		10*time.Second, 100*time.Millisecond)
}

// tcs status shows the cap the workers enforce, as they report it, not the CLI's own TCS_RATE (the
// chart's starter has none: it showed 100 while the workers capped at 7); workers that disagree
// are named.
func TestTCSStatusShowsTheWorkersCap(t *testing.T) {
	s := newStack(t, testenv.WorkerOptions{TCSRate: 7})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address} // no TCS_RATE: the CLI's default is 100
	status := func() map[string]any {
		var st map[string]any
		out := starterCLI(t, bin, env, true, "tcs", "status", "--json")
		require.NoError(t, json.Unmarshal([]byte(out), &st), out)
		return st
	}
	require.Eventually(t, func() bool { return status()["rate"] == 7.0 }, 15*time.Second, 200*time.Millisecond, "the workers' TCS_RATE")
	st := status()
	require.Equal(t, "TCS_RATE", st["rateSource"])
	require.Equal(t, 1.0, st["workers"])
	require.Nil(t, st["rateDisagreement"])

	testenv.StartWorker(t, s.tm, s.sim.URL(), testenv.WorkerOptions{TCSRate: 9})
	require.Eventually(t, func() bool { return status()["rateDisagreement"] != nil }, 15*time.Second, 200*time.Millisecond)
	require.Contains(t, status()["rateDisagreement"], "TCS_RATE=9 on test-worker-")
	out := starterCLI(t, bin, env, true, "tcs", "status")
	require.Contains(t, out, "the workers disagree: TCS_RATE=7 on ")
	require.Contains(t, out, "workers 2 present")
}

// With no worker present and no operator's rate, tcs status reports no cap rather than a setting of
// the CLI's own (TCS_RATE=100 here).
func TestTCSStatusWithNoWorkerReportsNoCap(t *testing.T) {
	tm := testenv.StartTemporal(t)
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + tm.Address, "TCS_RATE=100"}
	var st map[string]any
	out := starterCLI(t, bin, env, true, "tcs", "status", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.Equal(t, 0.0, st["rate"])
	require.Equal(t, 0.0, st["workers"])
	require.Contains(t, starterCLI(t, bin, env, true, "tcs", "status"), "rate   none reported: no worker present")
}
