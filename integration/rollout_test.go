package integration_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/internal/workerapp"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// feed starts a placement record every 100 ms until stop is called, and returns the placement IDs
// whose workflow started.
func feed(t *testing.T, c client.Client, file string) (stop func() []int64) {
	ctx, cancel := context.WithCancel(context.Background())
	var started []int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := int64(1); ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			m := placement(i, file)
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second) // never cut short by stop
			_, err := c.ExecuteWorkflow(sctx, client.StartWorkflowOptions{ID: m.WorkflowID(), TaskQueue: contract.TaskQueue},
				contract.PlacementWorkflowType, m)
			scancel()
			if err == nil {
				started = append(started, i)
			}
		}
	}()
	return func() []int64 { cancel(); <-done; return started }
}

// watchRollouts runs the worker's watch (the code behind its gauges) against c, looking every second,
// and returns a reader of writeback_rollout_rolled_back.
func watchRollouts(t *testing.T, c client.Client) func() float64 {
	reg := prometheus.NewRegistry()
	w := workerapp.NewWatch(reg, &workerapp.Config{StallAfter: 2 * time.Second, Retry: contract.DefaultRetrySettings()},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go w.Run(ctx, c)
	return func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == contract.MetricRolloutRolledBack {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
}

func countQ(t *testing.T, c client.Client, q string) int64 {
	resp, err := c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: q})
	require.NoError(t, err)
	return resp.GetCount()
}

// A rollout ramps a bad build (every write TCS answers 422: a mapping bug) while records flow: it is
// stopped at its first step and rolled back by itself, the reason said; its dead letters are retried
// on the current build and nothing is lost. A good build is then promoted through its step to current.
func TestRolloutStopsABadBuildAndPromotesAGoodOne(t *testing.T) {
	t.Parallel()
	tm := testenv.StartTemporal(t)
	good := testenv.StartSim(t, 1000)
	bad := testenv.StartSim(t, 1000)
	bad.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 422, Only: "/esr-exported"})
	testenv.StartWorker(t, tm, good.URL(), testenv.WorkerOptions{DeploymentName: "writeback", BuildID: "b1"})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + tm.Address, "TEMPORAL_DEPLOYMENT_NAME=writeback"}
	starterCLI(t, bin, env, true, "versioning", "set-current", "--build-id", "b1", "--wait", "60s")

	testenv.StartWorker(t, tm, bad.URL(), testenv.WorkerOptions{DeploymentName: "writeback", BuildID: "bad"})
	stop := feed(t, tm.Client, "ROLLOUT.DAT")
	cmd := exec.Command(bin, "versioning", "rollout", "--build-id", "bad", "--steps", "20,50", "--step", "24s",
		"--min-records", "5", "--wait", "--reason", "release with a mapping bug")
	cmd.Env = append(os.Environ(), env...)
	raw, err := cmd.Output()
	out := string(raw)
	fed := stop()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, out)
	require.Equal(t, 3, exit.ExitCode(), "a rollout that ends without making its build current exits 3: %s", out)
	require.Contains(t, out, "rollout "+contract.RolloutWorkflowID("writeback"))
	require.Contains(t, out, "build bad RolledBack (its records dead-letter more than the current build's", out)
	require.Regexp(t, `build bad: \d+ records, 100% dead-lettered \(tcs-422 \d+\)`, out, "the TCS answer behind its dead letters")
	step := regexp.MustCompile(`step\s+20%\s+(\d+)s\s+rolled back`).FindStringSubmatch(out)
	require.NotNil(t, step, out)
	took, _ := strconv.Atoi(step[1])
	require.Less(t, took, 24, "stopped before its first step's end")
	require.NotRegexp(t, `step\s+50%`, out, "stopped at its first step")
	watched := watchRollouts(t, tm.Client)
	require.Eventually(t, func() bool { return watched() == 1 }, 10*time.Second, 200*time.Millisecond,
		"the worker's gauge behind WritebackRolloutRolledBack")
	st := starterCLI(t, bin, env, true, "versioning", "status", "--json")
	require.Contains(t, st, `"current":"b1"`)
	require.Contains(t, st, `"ramping":null`)

	touched := countQ(t, tm.Client, `BuildIds = "versioned:bad"`)
	dead := countQ(t, tm.Client, `BuildIds = "versioned:bad" AND WritebackState = "DeadLettered"`)
	require.Positive(t, dead)
	t.Logf("rollout of the bad build: %d records fed, %d ran on it, %d dead-lettered, stopped %d s into its first step", len(fed), touched,
		dead, took)

	// The bad build's dead letters go back to the current build: a retry job writes them.
	starterCLI(t, bin, env, true, "retry", "--query", `BuildIds = "versioned:bad"`, "--reason",
		"rolled back: written by the current build", "--canary", "0", "--rate", "100")
	require.Eventually(t, func() bool {
		return countQ(t, tm.Client, `WritebackKind = "placement" AND WritebackState = "Completed"`) == int64(len(fed))
	}, 60*time.Second, 500*time.Millisecond, "every record written, none lost")
	for _, i := range fed {
		require.Equal(t, 1, good.Store.ExportedCount(i, "ROLLOUT.DAT"), "placement %d written once", i)
	}

	// A good build: promoted through its step to current.
	testenv.StartWorker(t, tm, good.URL(), testenv.WorkerOptions{DeploymentName: "writeback", BuildID: "b2"})
	stop = feed(t, tm.Client, "ROLLOUT2.DAT")
	out = starterCLI(t, bin, env, true, "versioning", "rollout", "--build-id", "b2", "--steps", "50", "--step", "12s",
		"--min-records", "5", "--wait")
	stop()
	require.Contains(t, out, "build b2 Promoted", out)
	require.Eventually(t, func() bool { // read from visibility: a second behind, at most
		return strings.Contains(starterCLI(t, bin, env, true, "versioning", "status"),
			"rollout "+contract.RolloutWorkflowID("writeback")+": build b2 Promoted at 100%")
	}, 10*time.Second, 500*time.Millisecond)
	require.Regexp(t, `step\s+50%\s+\d+s\s+healthy`, out)
	require.Contains(t, starterCLI(t, bin, env, true, "versioning", "status", "--json"), `"current":"b2"`)
	require.Eventually(t, func() bool { return watched() == 0 }, 10*time.Second, 200*time.Millisecond, "cleared by the next rollout's end")
	require.False(t, strings.Contains(out, "RolledBack"))
}
