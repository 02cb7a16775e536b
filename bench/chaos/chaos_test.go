package chaos_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tis-writeback/writeback/bench/chaos"
	"github.com/tis-writeback/writeback/internal/testenv"
)

// TestShortChaosRun is the chaos run in small: a few hundred records, one of each fault, and the
// operator's actions under them (a hold, a retry job resumed and cancelled). A regression in any
// guarantee (nothing lost, nothing duplicated, marks, CRITICAL lines, DLQ, retry all, each record
// retried as often as the jobs say) fails CI. The long run is `make chaos`.
func TestShortChaosRun(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the whole stack")
	}
	node := testenv.RabbitNode(t) // the RabbitMQ fault stops its app: the run's own node, never the machine's
	testenv.TemporalCLI(t)        // fails with a clear message if bin/temporal is missing
	var log strings.Builder
	rep, err := chaos.Run(context.Background(), chaos.Config{
		Dir: t.TempDir(), Root: testenv.RepoRoot(t), AMQPURL: testenv.AMQPURL(t), RabbitNode: node,
		Records: 300, PublishRate: 30, ScanFraction: 0.3, UnknownFraction: 0.03, PoisonEvery: 50,
		ErrorRate: 0.05, TimeoutRate: 0.02, Outages: []time.Duration{4 * time.Second, 4 * time.Second},
		KillWorkerEvery: 5 * time.Second, KillStarterEvery: 8 * time.Second,
		RabbitDown: 3 * time.Second, TemporalDown: 3 * time.Second,
		Workers: 2, TCSRate: 200, SettleTimeout: 4 * time.Minute, Seed: 42, Log: &log, Operator: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("writeback %+v\npre-fix   %+v\nkills %v\nnotes %q\n%s", rep.Writeback, rep.Naive, rep.Kills, rep.Notes, log.String())
	if !rep.OK() {
		t.Fatalf("chaos run broke a promise:\n%s", strings.Join(rep.Problems, "\n"))
	}
	if rep.Writeback.Missing != 0 || rep.Writeback.Duplicates != 0 {
		t.Fatalf("writeback lost %d, duplicated %d", rep.Writeback.Missing, rep.Writeback.Duplicates)
	}
	if rep.Naive.Missing == 0 {
		t.Errorf("the pre-fix consumer lost nothing: the fault profile did not reproduce the incident")
	}
	if rep.Kills["worker (SIGKILL)"] == 0 || rep.Kills["starter (SIGKILL)"] == 0 || rep.Kills["rabbitmq app"] != 1 || rep.Kills["temporal"] != 1 {
		t.Errorf("not every fault happened: %v", rep.Kills)
	}
}
