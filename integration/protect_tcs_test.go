package integration_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// One cap for every path: two workers, TCS_RATE=20, a backlog released at once (first attempts
// run as local activities, which the task queue's rate limit does not see). The TCS simulator
// sees at most the cap (+10%) over any 10 s window.
func TestOneCapAcrossWorkersAndTheFastPath(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tm := testenv.StartTemporal(t)
	s := testenv.StartSim(t, 10000)
	o := testenv.WorkerOptions{TCSRate: 20, KeyHonoured: true}
	w1 := testenv.StartWorker(t, tm, s.URL(), o)
	w2 := testenv.StartWorker(t, tm, s.URL(), o)
	require.Eventually(t, func() bool { return w1.Guard.Workers() == 2 && w2.Guard.Workers() == 2 }, 30*time.Second, 200*time.Millisecond,
		"each worker counts the other")
	st := &stack{tm: tm, sim: s}
	const n = 400
	var runs []client.WorkflowRun
	for i := int64(0); i < n; i++ {
		m := placement(1000+i, "CAP.DAT")
		runs = append(runs, st.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m))
	}
	start := time.Now()
	for _, run := range runs {
		require.Equal(t, contract.StateCompleted, result(t, run, 3*time.Minute).State)
	}
	took := time.Since(start)
	peak := sim.MaxRate(s.Store.Timeline(), 10)
	t.Logf("MEASURED: 2 workers, TCS_RATE=20, %d records released at once: peak %.1f requests/s over 10 s, all written in %.1f s",
		n, peak, took.Seconds())
	require.LessOrEqual(t, peak, 22.0, "the cap holds across workers and the fast path")
	require.Equal(t, 0, s.Store.Stats().Duplicates)
}

// Outage mode: TCS answers 503 to everyone for longer than the retry budget. The workers stop
// calling it but for probes, no record spends its budget, and when TCS is back all are written.
// A 5xx that only one record gets still spends that record's budget.
func TestOutageModeSpendsNoBudgetAndOnlyProbes(t *testing.T) {
	for _, fault := range []sim.Faults{{ErrorRate: 1, ErrorStatus: 503}, {Outage: true}} {
		name := "503 to everyone"
		if fault.Outage {
			name = "connections refused"
		}
		t.Run(name, func(t *testing.T) {
			s := newStack(t, testenv.WorkerOptions{TCSTimeout: 500 * time.Millisecond, TCSRate: 50,
				OutageWindow: 5 * time.Second, OutageMinFailures: 5, OutageProbeEvery: time.Second,
				Retry: contract.RetrySettings{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
					MaximumInterval: 2 * time.Second, Budget: 10 * time.Second, ParkingPeriod: time.Hour}})
			s.sim.Store.SetFaults(fault)
			var runs []client.WorkflowRun
			for i := int64(0); i < 40; i++ {
				m := placement(600+i, "STORM.DAT")
				runs = append(runs, s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m))
			}
			require.Eventually(t, func() bool { return len(s.worker.Logs.Lines("TCS mode changed", `"to":"outage"`)) == 1 },
				30*time.Second, 100*time.Millisecond)
			require.Contains(t, scrape(t, s.worker.Metrics), `writeback_tcs_mode{mode="outage"} 1`)
			entered := time.Now()
			time.Sleep(20 * time.Second) // twice the budget
			tl, during := s.sim.Store.Timeline(), 0
			for sec := entered.Unix() + 1; sec < entered.Unix()+20; sec++ {
				during += tl[sec]
			}
			s.sim.Store.SetFaults(sim.Faults{})
			back := time.Now()
			for i := range runs {
				id := placement(600+int64(i), "STORM.DAT").WorkflowID()
				s.waitStateOr(t, id, contract.StateCompleted, time.Minute, func() string {
					return strings.Join(s.worker.Logs.Lines("TCS"), "\n")
				})
			}
			t.Logf("MEASURED (%s): 40 records, 20 s storm (2 × budget): 0 dead letters; %.2f requests/s reached TCS during the storm; all written %.1f s after it ended",
				name, float64(during)/19, time.Since(back).Seconds())
			if !fault.Outage {
				require.LessOrEqual(t, float64(during)/19, 2.0, "only probes during the storm")
			}
			require.Empty(t, s.worker.Logs.Lines(`"level":"CRITICAL"`))
			require.NotEmpty(t, s.worker.Logs.Lines("TCS mode changed", `"to":"normal"`))
			require.Equal(t, 0, s.sim.Store.Stats().Duplicates)
		})
	}
}

// A 5xx that only this record gets is its own failure: it spends its budget (the workflow goes on
// to mark it errored, retried while TCS does not answer it), while the others are written and no
// outage is declared.
func TestOneRecordsOwnFailuresStillSpendItsBudget(t *testing.T) {
	s := newStack(t, testenv.WorkerOptions{TCSTimeout: 500 * time.Millisecond,
		OutageWindow: 5 * time.Second, OutageMinFailures: 5, OutageProbeEvery: time.Second,
		Retry: contract.RetrySettings{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: time.Second, Budget: 5 * time.Second, ParkingPeriod: time.Hour}})
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 503, Only: "/api/placements/999"})
	bad := placement(999, "OWN.DAT")
	s.start(t, contract.PlacementWorkflowType, bad.WorkflowID(), bad)
	for i := int64(0); i < 20; i++ {
		m := placement(900+i, "FINE.DAT")
		s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
		time.Sleep(200 * time.Millisecond)
	}
	require.Eventually(t, func() bool {
		return len(s.worker.Logs.Lines(`"ActivityType":"MarkPlacementFailed"`, bad.WorkflowID())) > 0
	}, 30*time.Second, 200*time.Millisecond, "the budget ran out: the record goes on to be marked errored")
	for i := int64(0); i < 20; i++ {
		s.waitState(t, placement(900+i, "FINE.DAT").WorkflowID(), contract.StateCompleted, 30*time.Second)
	}
	require.Empty(t, s.worker.Logs.Lines("TCS mode changed"), "one record's failures are not an outage")
	s.sim.Store.SetFaults(sim.Faults{})
	st := s.waitState(t, bad.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	require.Contains(t, st.LastError, "retry budget")
}

// The cap follows the workers that are there: a worker that stops gracefully gives its share back
// at once, one that vanishes (killed, partitioned) stops counting within PresenceTTL, and one that
// joins takes its share at once. Before, a departed worker kept its share for 5 minutes.
func TestCapShareFollowsTheWorkersPresent(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tm := testenv.StartTemporal(t)
	s := testenv.StartSim(t, 100)
	o := testenv.WorkerOptions{TCSRate: 30}
	ws := []*testenv.Worker{testenv.StartWorker(t, tm, s.URL(), o), testenv.StartWorker(t, tm, s.URL(), o), testenv.StartWorker(t, tm, s.URL(), o)}
	counts := func(n int64, ws ...*testenv.Worker) func() bool {
		return func() bool {
			for _, w := range ws {
				if w.Guard.Workers() != n || w.Guard.Rate() != 30/float64(n) {
					return false
				}
			}
			return true
		}
	}
	require.Eventually(t, counts(3, ws...), 10*time.Second, 100*time.Millisecond, "three workers, a third of the cap each")

	start := time.Now()
	ws[2].Stop()
	require.Eventually(t, counts(2, ws[0], ws[1]), 3*time.Second, 100*time.Millisecond, "a graceful stop gives its share back at once")
	t.Logf("MEASURED: share back %.1f s after a graceful stop", time.Since(start).Seconds())

	start = time.Now()
	ws[1].Vanish()
	require.Eventually(t, counts(1, ws[0]), contract.PresenceTTL+5*time.Second, 100*time.Millisecond, "a vanished worker stops counting within seconds")
	t.Logf("MEASURED: share back %.1f s after a worker vanished", time.Since(start).Seconds())

	start = time.Now()
	joined := testenv.StartWorker(t, tm, s.URL(), o)
	require.Eventually(t, counts(2, ws[0], joined), 3*time.Second, 100*time.Millisecond, "a new worker takes its share at once")
	t.Logf("MEASURED: shares settled %.1f s after a worker joined", time.Since(start).Seconds())
}

// A record the cap cannot serve within the fast path's time waits its turn: it is written by one
// update activity, in order, never refused as "the cap's queue is too long" and sent away to try
// again later (before, a backlog longer than the 30 s attempt timeout did that again and again).
func TestABacklogWaitsItsTurnAtTheCap(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tm := testenv.StartTemporal(t)
	s := testenv.StartSim(t, 10000)
	testenv.StartWorker(t, tm, s.URL(), testenv.WorkerOptions{TCSRate: 2, KeyHonoured: true})
	st := &stack{tm: tm, sim: s}
	const n = 80 // 40 s of requests at the cap: longer than the fast path waits (about 30 s) and the attempt timeout (5 s)
	var runs []client.WorkflowRun
	for i := int64(0); i < n; i++ {
		m := placement(3000+i, "QUEUE.DAT")
		runs = append(runs, st.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m))
	}
	for _, run := range runs {
		require.Equal(t, contract.StateCompleted, result(t, run, 3*time.Minute).State)
	}
	for _, run := range runs {
		updates, waits := 0, 0
		iter := tm.Client.GetWorkflowHistory(context.Background(), run.GetID(), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			e, err := iter.Next()
			require.NoError(t, err)
			if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == contract.UpdatePlacementName {
				updates++
			}
			if e.GetTimerStartedEventAttributes() != nil {
				waits++
			}
		}
		require.LessOrEqual(t, updates, 1, "%s: one update activity, not one per refusal", run.GetID())
		require.Zero(t, waits, "%s: no wait for a TCS that was there all along", run.GetID())
	}
	require.Equal(t, n, s.Store.Stats().Exported)
}
