package integration_test

import (
	"context"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/starter/intake"
)

func gauge(t *testing.T, metrics, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`).FindStringSubmatch(scrape(t, metrics))
	require.NotNil(t, m, "%s is not exported", name)
	v, err := strconv.ParseFloat(m[2], 64)
	require.NoError(t, err)
	return v
}

// What is stuck shows: the oldest parked dead letter's age, its expiry (a log line with the record, and
// a count), and records that stall because no worker takes their tasks, within STALL_AFTER.
func TestStuckRecordsAndExpiringDeadLettersShow(t *testing.T) {
	t.Parallel()
	s, workerBin := processStack(t)
	metricsAddr := freeAddr(t)
	metrics := "http://" + metricsAddr + "/metrics"
	w := startWorkerProcess(t, workerBin, s, "--metrics-addr", metricsAddr, "--stall-after", "3s", "--parking-period", "12s",
		"--ledger-schedule", "off")
	starter := intake.TemporalStarter{Client: s.tm.Client}
	start := func(id int64, file string) string {
		rec, err := intake.Decode(contract.KindPlacement, mustJSON(t, placement(id, file)))
		require.NoError(t, err)
		_, err = starter.Start(context.Background(), rec)
		require.NoError(t, err)
		return rec.WorkflowID
	}

	// A dead letter (TCS does not know the placement): its age shows, then its parking period ends.
	dead := start(888888, "EXPIRE.DAT")
	s.waitState(t, dead, contract.StateDeadLettered, 30*time.Second)
	require.Eventually(t, func() bool { return gauge(t, metrics, contract.MetricOldestDeadLetterAge) > 0 }, 10*time.Second, 200*time.Millisecond)
	require.Equal(t, 12.0, gauge(t, metrics, "writeback_dead_letter_parking_period_seconds"))
	require.Eventually(t, func() bool { return len(w.logs.Lines(`"level":"ERROR"`, "dead letter expired", dead)) == 1 },
		30*time.Second, 200*time.Millisecond, "the expiry is logged with the record")
	expired := regexp.MustCompile(`(?m)^` + contract.MetricDeadLettersExpired + `\{[^}]*kind="placement"[^}]*\} 1$`)
	require.Eventually(t, func() bool { return expired.MatchString(scrape(t, metrics)) }, 10*time.Second, 200*time.Millisecond,
		"the expiry is counted")
	require.Eventually(t, func() bool { return gauge(t, metrics, contract.MetricOldestDeadLetterAge) == 0 }, 10*time.Second, 200*time.Millisecond,
		"no dead letter is parked any more")

	// A build that gets the records but has no worker: records stall.
	require.Zero(t, gauge(t, metrics, contract.MetricStalledRecords))
	b1 := startWorkerProcess(t, workerBin, s, "--deployment-name", "wb-stall", "--build-id", "b1", "--ledger-schedule", "off")
	bin := testenv.Build(t, "./starter", t.TempDir())
	starterCLI(t, bin, []string{"TEMPORAL_ADDRESS=" + s.tm.Address}, true,
		"versioning", "set-current", "--deployment-name", "wb-stall", "--build-id", "b1", "--wait", "60s")
	require.NoError(t, b1.cmd.Process.Signal(syscall.SIGTERM))
	<-b1.done
	stuck := start(5, "STALL.DAT")
	startedAt := time.Now()
	require.Eventually(t, func() bool { return gauge(t, metrics, contract.MetricStalledRecords) == 1 }, 30*time.Second, 200*time.Millisecond)
	took := time.Since(startedAt)
	require.Less(t, took, 3*time.Second+5*time.Second, "within its threshold and a look or two")
	t.Logf("stalled record %s counted %s after its start (STALL_AFTER 3s)", stuck, took.Round(100*time.Millisecond))
}
