package integration_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/workflows"
)

// Recovery traffic never starves fresh records under the one cap: with a 300-record retry job
// queued behind a cap of 10 requests/s (30 s of work), a fresh export completes while most of the
// job still waits, not behind it.
func TestFreshRecordsGoAheadOfARetryJob(t *testing.T) {
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}
	const n = 300
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = 7000 + int64(i) // TCS seeds 1..1000 only: 404, dead letter
		m := placement(ids[i], "RECOVER.DAT")
		s.start(t, workflows.PlacementWorkflowType, m.WorkflowID(), m)
	}
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="DeadLettered"`) == n },
		3*time.Minute, time.Second)
	s.sim.Store.MakeKnown(ids, nil, false)

	starterCLI(t, bin, env, true, "tcs", "rate", "10", "--reason", "protect TCS while the job runs", "--by", "ops")
	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, s.worker.Metrics), "writeback_tcs_rate_limit 10\n")
	}, 30*time.Second, 500*time.Millisecond, "the workers took the new cap")

	out := starterCLI(t, bin, env, true, "retry", "--all", "--rate", "1000", "--canary", "0", "--no-wait",
		"--reason", "placements created in TCS", "--by", "ops")
	require.Contains(t, out, "job ")
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="DeadLettered"`) < n/3 },
		time.Minute, 200*time.Millisecond, "the job signalled its records: they queue behind the cap")

	fresh := placement(1, "FRESH.DAT")
	result(t, s.start(t, workflows.PlacementWorkflowType, fresh.WorkflowID(), fresh), time.Minute)
	waiting := n - count(t, s.tm.Client, `WritebackRecordId!="1" AND WritebackState="Completed"`)
	t.Logf("the fresh record completed with %d of the job's %d records still waiting", waiting, n)
	require.Greater(t, waiting, n/2, "the fresh record went ahead of the retry job's backlog")
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="Completed"`) == n+1 },
		3*time.Minute, time.Second, "the job's records are written too, after it")
	for _, id := range ids[:5] {
		require.Equal(t, 1, s.sim.Store.ExportedCount(id, "RECOVER.DAT"), fmt.Sprint(id))
	}
}
