package integration_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
)

// Recovery traffic never starves fresh records under the one cap: while a retry job's batch of
// 50 records queues behind a cap of 5 requests/s (10 s of work), a fresh export goes next, not
// behind the batch. (A job signals a batch and awaits its outcomes before the next, so no more
// than a batch queues at once; `make bench` measures a 300-record job at a cap of 10.)
func TestFreshRecordsGoAheadOfARetryJob(t *testing.T) {
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}
	const n = 60
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = 7000 + int64(i) // TCS seeds 1..1000 only: 404, dead letter
		m := placement(ids[i], "RECOVER.DAT")
		s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	}
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="DeadLettered"`) == n },
		3*time.Minute, time.Second)
	s.sim.Store.MakeKnown(ids, nil, false)

	starterCLI(t, bin, env, true, "tcs", "rate", "5", "--reason", "protect TCS while the job runs", "--by", "ops")
	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, s.worker.Metrics), "writeback_tcs_rate_limit 5\n")
	}, 30*time.Second, 500*time.Millisecond, "the workers took the new cap")

	out := starterCLI(t, bin, env, true, "retry", "--all", "--rate", "1000", "--canary", "0", "--no-wait",
		"--reason", "placements created in TCS", "--by", "ops")
	require.Contains(t, out, "job ")
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="Updating"`) >= 40 },
		time.Minute, 100*time.Millisecond, "the job signalled its first batch")
	time.Sleep(3 * time.Second) // its records reach the cap's queue (a workflow task and a local activity each)

	before := count(t, s.tm.Client, `WritebackState="Completed"`)
	fresh := placement(1, "FRESH.DAT")
	result(t, s.start(t, contract.PlacementWorkflowType, fresh.WorkflowID(), fresh), time.Minute)
	during := count(t, s.tm.Client, `WritebackState="Completed"`) - before - 1
	t.Logf("%d of the job's records were written while the fresh one waited", during)
	require.Less(t, during, 8, "the fresh record went ahead of the batch, not behind its 20-odd queued records")
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="Completed"`) == n+1 },
		3*time.Minute, time.Second, "the job's records are written too, after it")
	for _, id := range ids[:5] {
		require.Equal(t, 1, s.sim.Store.ExportedCount(id, "RECOVER.DAT"), fmt.Sprint(id))
	}
}
