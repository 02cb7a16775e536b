package integration_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

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
