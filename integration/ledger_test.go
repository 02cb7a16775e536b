package integration_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/starter/ops"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

func ledgerRun(t *testing.T, bin string, env []string, day string, args ...string) contract.LedgerReport {
	t.Helper()
	out := starterCLI(t, bin, env, true, append([]string{"ledger", "run", day, "--json", "--by", "test"}, args...)...)
	lines := strings.SplitN(strings.TrimSpace(out), "\n", 2)
	require.Len(t, lines, 2, out)
	require.Regexp(t, `^ledger writeback-ledger-`+day+`-\d{6}-[0-9a-f]{6}$`, lines[0], "the ledger's ID first")
	var rep contract.LedgerReport
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rep), out)
	require.Equal(t, contract.LedgerDone, rep.State)
	return rep
}

// The daily ledger finds the rows TCS lost after their records completed and writes each back once;
// a report-only ledger lists them and writes nothing; a hold stops its reads until released.
func TestLedgerFindsDriftAndWritesItBackOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}
	day := time.Now().UTC().Format(contract.LedgerDayLayout)

	ids := []int64{601, 602, 603, 604, 605}
	for _, id := range ids {
		m := placement(id, "LEDGER.DAT")
		result(t, s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m), 30*time.Second)
	}
	unknown := s.deadLetter(t, 99991, "LEDGER.DAT") // TCS does not know it: parked
	_ = unknown
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="Completed"`) == 5 }, 10*time.Second, 100*time.Millisecond)

	// A restore from backup loses two rows.
	s.sim.Store.DeleteEvents(602)
	s.sim.Store.DeleteEvents(604)

	rep := ledgerRun(t, bin, env, day, "--report-only")
	require.Equal(t, 5, rep.Counts[contract.StateCompleted])
	require.Equal(t, 1, rep.Counts[contract.StateDeadLettered])
	require.Equal(t, 5, rep.Checked)
	require.Equal(t, 2, rep.Drift)
	require.Zero(t, rep.Repaired)
	require.Len(t, rep.Records, 2)
	for _, d := range rep.Records {
		require.Contains(t, []string{placement(602, "LEDGER.DAT").WorkflowID(), placement(604, "LEDGER.DAT").WorkflowID()}, d.WorkflowID)
		require.Contains(t, d.Action, "report-only")
	}
	require.Zero(t, s.sim.Store.ExportedCount(602, "LEDGER.DAT"), "report-only writes nothing")

	rep = ledgerRun(t, bin, env, day)
	require.Equal(t, 2, rep.Drift)
	require.Equal(t, 2, rep.Repaired)
	for _, id := range []int64{602, 604} {
		wid := placement(id, "LEDGER.DAT").WorkflowID()
		s.waitState(t, wid, contract.StateCompleted, 30*time.Second)
		require.Eventually(t, func() bool { return s.sim.Store.ExportedCount(id, "LEDGER.DAT") == 1 }, 30*time.Second, 100*time.Millisecond)
		// The record's own history says who started it again and why.
		tl, err := ops.History(t.Context(), s.tm.Client, wid)
		require.NoError(t, err)
		require.Contains(t, tl.Entries[0].Detail, "started by the ledger of "+day)
		require.Contains(t, tl.Entries[0].Detail, "by test")
		require.Contains(t, tl.Entries[0].Detail, "TCS no longer holds the row")
	}
	// The written-again runs started today too: the next ledger reads them instead of the runs they
	// replaced, and finds nothing more to do.
	rep = ledgerRun(t, bin, env, day)
	require.Zero(t, rep.Drift, "%+v", rep.Records)
	require.Equal(t, 5, rep.Checked, "each record once, by its latest run")
	require.Equal(t, 5, rep.Counts[contract.StateCompleted])
	for _, id := range ids {
		require.Equal(t, 1, s.sim.Store.ExportedCount(id, "LEDGER.DAT"), "written back exactly once")
	}
	require.Zero(t, s.sim.Store.Stats().Duplicates)

	// ledger show prints the day's last ledger.
	var shown contract.LedgerReport
	require.NoError(t, json.Unmarshal([]byte(starterCLI(t, bin, env, true, "ledger", "show", day, "--json")), &shown))
	require.Equal(t, rep.ID, shown.ID)
	out := starterCLI(t, bin, env, false, "ledger", "show", "2001-01-01")
	require.Empty(t, out)

	// A hold stops the ledger's reads; the release lets it finish.
	starterCLI(t, bin, env, true, "tcs", "hold", "--reason", "TCS restore", "--by", "test")
	require.Eventually(t, func() bool { return len(s.worker.Logs.Lines("TCS mode changed", `"to":"hold"`)) == 1 }, 10*time.Second, 100*time.Millisecond)
	before := s.sim.Store.Stats().Requests["GET placement"]
	out = starterCLI(t, bin, env, true, "ledger", "run", day, "--wait", "0")
	id := strings.TrimPrefix(strings.TrimSpace(out), "ledger ")
	time.Sleep(5 * time.Second)
	require.Equal(t, before, s.sim.Store.Stats().Requests["GET placement"], "no read during the hold")
	starterCLI(t, bin, env, true, "tcs", "release")
	var done contract.LedgerReport
	require.NoError(t, s.tm.Client.GetWorkflow(t.Context(), id, "").Get(t.Context(), &done))
	require.Equal(t, contract.LedgerDone, done.State)
	require.Equal(t, 5, done.Checked)
}

// A worker process SIGKILLed while a ledger reads its page: the page is read again by another worker
// once its heartbeat is missed, and the ledger ends with every record read and each drifted row written
// back once.
func TestLedgerResumesAfterItsWorkerIsKilled(t *testing.T) {
	t.Parallel()
	s, workerBin := processStack(t)
	args := []string{"--tcs-rate", "20", "--tcs-idempotency-key-honoured", "--ledger-schedule", "off"}
	w := startWorkerProcess(t, workerBin, s, args...)
	day := time.Now().UTC().Format(contract.LedgerDayLayout)
	const n = 120
	for i := int64(0); i < n; i++ {
		m := placement(700+i, "KILLED.DAT")
		s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	}
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="Completed"`) == n }, 60*time.Second, 200*time.Millisecond)
	drifted := []int64{701, 750, 790}
	for _, id := range drifted {
		s.sim.Store.DeleteEvents(id)
	}

	before := s.sim.Store.Stats().Requests["GET placement"]
	reads := func() int { return sum(s.sim.Store.Stats().Requests["GET placement"]) - sum(before) }
	run, err := s.tm.Client.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: contract.LedgerWorkflowID(day, time.Now(), "test"),
		TaskQueue: contract.TaskQueue}, contract.LedgerWorkflowType, contract.LedgerInput{Day: day, By: "test"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return reads() > 30 }, 30*time.Second, 50*time.Millisecond, "the ledger is reading")
	require.NoError(t, w.cmd.Process.Kill())
	<-w.done
	killedAt := reads()
	startWorkerProcess(t, workerBin, s, args...)

	var rep contract.LedgerReport
	require.NoError(t, run.Get(t.Context(), &rep))
	require.Equal(t, n, rep.Checked, "every record read, once the page was read again")
	require.Equal(t, len(drifted), rep.Drift)
	require.Greater(t, reads(), n, "the killed page was read again")
	for _, id := range drifted {
		require.Eventually(t, func() bool { return s.sim.Store.ExportedCount(id, "KILLED.DAT") == 1 }, 30*time.Second, 100*time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	for i := int64(0); i < n; i++ {
		require.Equal(t, 1, s.sim.Store.ExportedCount(700+i, "KILLED.DAT"), "placement %d written once", 700+i)
	}
	t.Logf("ledger of %d records, its worker SIGKILLed after %d reads: %d reads of TCS in all", n, killedAt, reads())
}

func sum(m map[string]int) int {
	t := 0
	for _, v := range m {
		t += v
	}
	return t
}

// A scan corrected by an operator (retry with a corrected record) holds the corrected result in TCS:
// the ledger compares the row with what the record last wrote, not with its first message, and
// finds no drift (rewriting the first message would undo the correction).
func TestLedgerComparesWithTheCorrectionARecordWrote(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}
	day := time.Now().UTC().Format(contract.LedgerDayLayout)
	sc := contract.ScanCompleted{ScanID: "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c77", Result: "SANITISED", FileName: "c.pdf",
		CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 422, Only: "/api/scans/" + sc.ScanID})
	s.start(t, contract.ScanWorkflowType, sc.WorkflowID(), sc)
	s.waitState(t, sc.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	s.sim.Store.SetFaults(sim.Faults{})
	corrected := sc
	corrected.Result = "CLEAN"
	file := t.TempDir() + "/corrected.json"
	require.NoError(t, os.WriteFile(file, mustJSON(t, corrected), 0o644))
	starterCLI(t, bin, env, true, "retry", "--workflow-id", sc.WorkflowID(), "--record-file", file, "--reason", "result fixed", "--by", "ops")
	s.waitState(t, sc.WorkflowID(), contract.StateCompleted, 30*time.Second)
	got, ok := s.sim.Store.ScanRecord(sc.ScanID)
	require.True(t, ok)
	require.Equal(t, "CLEAN", got.Result)

	rep := ledgerRun(t, bin, env, day)
	require.Equal(t, 1, rep.Checked)
	require.Zero(t, rep.Drift, "%+v", rep.Records)
	got, _ = s.sim.Store.ScanRecord(sc.ScanID)
	require.Equal(t, "CLEAN", got.Result, "the correction stands")
}
