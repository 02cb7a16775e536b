package integration_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

func requestsTo(st sim.Stats, endpoint string) int {
	n := 0
	for _, c := range st.Requests[endpoint] {
		n += c
	}
	return n
}

// TCS commits some writes after the client gave up, later than the next attempt's read: only the
// Idempotency-Key (stable across attempts) keeps that to one EXPORTED row.
func TestLateCommitsNeverDuplicate(t *testing.T) {
	for _, tc := range []struct {
		name        string
		keyHonoured bool
	}{{"check before write, key sent", false}, {"key honoured, no read", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, testenv.WorkerOptions{TCSTimeout: 300 * time.Millisecond, KeyHonoured: tc.keyHonoured,
				Retry: contract.RetrySettings{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2,
					MaximumInterval: time.Second, Budget: time.Hour, ParkingPeriod: time.Hour}})
			// Held until the client gives up (300 ms), committed 2.5 s later: after the retry's read.
			s.sim.Store.SetFaults(sim.Faults{LateCommitRate: 0.2, LateCommitMs: 2500, Only: "/esr-exported"})
			const n = 100
			var runs []client.WorkflowRun
			for i := int64(0); i < n; i++ {
				m := placement(400+i, "LATE.DAT")
				runs = append(runs, s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m))
			}
			for _, run := range runs {
				require.Equal(t, contract.StateCompleted, result(t, run, 2*time.Minute).State)
			}
			time.Sleep(3 * time.Second) // the last late commits land
			for i := int64(0); i < n; i++ {
				require.Equal(t, 1, s.sim.Store.ExportedCount(400+i, "LATE.DAT"), "placement %d", 400+i)
			}
			st := s.sim.Store.Stats()
			require.Equal(t, 0, st.Duplicates)
			gets, posts := requestsTo(st, "GET placement"), requestsTo(st, "POST esr-exported")
			t.Logf("MEASURED (%s): %d records, 20%% late commits: 0 duplicates; TCS requests per record: %.2f GET + %.2f POST",
				tc.name, n, float64(gets)/n, float64(posts)/n)
			if tc.keyHonoured {
				require.Zero(t, gets, "no read before the write when the key is honoured")
			}
		})
	}
}

// Writes whose answers were all lost until the budget ran out: TCS holds the record, so the
// workflow completes instead of dead-lettering; a scan is never overwritten with ERRORED and no
// CRITICAL line is logged. (The placement's worker honours the key, so every attempt POSTs.)
func TestLostAnswersUntilTheBudgetRanOutCompleteInstead(t *testing.T) {
	s, sc, _, runScan, runPlacement := lostAnswers(t, "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c99", 77, "LOSTALL.DAT")
	// Past the budget both workflows look in TCS before dead-lettering; their first looks get no
	// answer either. Then TCS answers again.
	for _, act := range []string{"CheckScanWritten", "CheckPlacementWritten"} {
		require.Eventually(t, func() bool { return len(s.worker.Logs.Lines(`"ActivityType":"`+act+`"`)) > 0 },
			30*time.Second, 20*time.Millisecond, "the budget ran out and the look began")
	}
	s.sim.Store.SetFaults(sim.Faults{})
	require.Equal(t, contract.StateCompleted, result(t, runScan, time.Minute).State)
	got, ok := s.sim.Store.ScanRecord(sc.ScanID)
	require.True(t, ok)
	require.Equal(t, "COMPLETED", got.Status)
	require.Equal(t, "SANITISED", got.Result)
	require.Equal(t, contract.StateCompleted, result(t, runPlacement, time.Minute).State)
	require.Equal(t, 1, s.sim.Store.ExportedCount(77, "LOSTALL.DAT"))
	require.Zero(t, s.sim.Store.FailedCount(77, "LOSTALL.DAT"), "no FAILED mark")
	require.Empty(t, s.worker.Logs.Lines(`"level":"CRITICAL"`))
}

// As above, but the look before dead-lettering gets no answer either, to its last attempt: the record
// goes on to its mark, which is retried until TCS answers. TCS then holds the record as written, so
// the phases still end in the truth: Completed, no FAILED mark, no ERRORED scan, no CRITICAL line.
func TestALookThatCannotAnswerStillEndsInTheTruth(t *testing.T) {
	t.Parallel()
	s, sc, p, runScan, runPlacement := lostAnswers(t, "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c98", 78, "LOSTLOOK.DAT")
	require.Eventually(t, func() bool { return len(s.worker.Logs.Lines("could not look in TCS before dead-lettering")) >= 2 },
		time.Minute, 20*time.Millisecond, "both looks gave up")
	for _, act := range []string{"MarkScanErrored", "MarkPlacementFailed"} {
		require.Eventually(t, func() bool { return len(s.worker.Logs.Lines(`"ActivityType":"`+act+`"`)) > 0 },
			30*time.Second, 20*time.Millisecond, "the mark began while TCS still lost every answer")
	}
	s.sim.Store.SetFaults(sim.Faults{})

	require.Equal(t, contract.StateCompleted, result(t, runScan, time.Minute).State)
	got, ok := s.sim.Store.ScanRecord(sc.ScanID)
	require.True(t, ok)
	require.Equal(t, "COMPLETED", got.Status, "never overwritten with ERRORED")
	require.Equal(t, contract.StateCompleted, result(t, runPlacement, time.Minute).State)
	require.Equal(t, 1, s.sim.Store.ExportedCount(78, "LOSTLOOK.DAT"))
	require.Zero(t, s.sim.Store.FailedCount(78, "LOSTLOOK.DAT"), "no FAILED mark")
	require.Empty(t, s.worker.Logs.Lines(`"level":"CRITICAL"`))
	for _, id := range []string{sc.WorkflowID(), p.WorkflowID()} {
		require.Zero(t, count(t, s.tm.Client, `WritebackState="DeadLettered" AND WorkflowId="`+id+`"`))
	}
}

// lostAnswers starts a scan and a placement on a worker with a 3 s budget while TCS processes every
// request and answers none (the writes land, their answers are lost).
func lostAnswers(t *testing.T, scanID string, placementID int64, file string) (*stack, contract.ScanCompleted,
	contract.PlacementExported, client.WorkflowRun, client.WorkflowRun) {
	opts := testenv.WorkerOptions{TCSTimeout: 300 * time.Millisecond, KeyHonoured: true,
		Retry: contract.RetrySettings{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: 500 * time.Millisecond, Budget: 3 * time.Second, ParkingPeriod: time.Hour}}
	s := newStack(t, opts)
	s.sim.Store.SetFaults(sim.Faults{TimeoutRate: 1, Only: "/api/"}) // processed, never answered
	sc := contract.ScanCompleted{ScanID: scanID, Result: "SANITISED", FileName: "a.pdf",
		CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
	p := placement(placementID, file)
	return s, sc, p, s.start(t, contract.ScanWorkflowType, sc.WorkflowID(), sc), s.start(t, contract.PlacementWorkflowType, p.WorkflowID(), p)
}
