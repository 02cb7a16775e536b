package integration_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
)

// The operator's control path, tried as an operator would: each request acts once and the command
// says truly what the record did with it.

// jobState reads `jobs show ID --json`.
func jobState(t *testing.T, bin string, env []string, id string) map[string]any {
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(starterCLI(t, bin, env, true, "jobs", "show", id, "--json")), &st))
	return st
}

func jobIDOf(t *testing.T, out string) string {
	first := strings.SplitN(out, "\n", 2)[0]
	require.Regexp(t, `^job retry-job-\S+$`, first)
	return strings.TrimPrefix(first, "job ")
}

// retry / abandon --workflow-id answer with what the record did, exit 1 when it refused; a request
// sent twice (the same --request-id, or a signal with the same requestId) acts once; a malformed
// signal blocks nothing.
func TestRetryCommandAnswersForTheRecord(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}
	parked := s.deadLetter(t, 7001, "ASK.DAT") // unknown to TCS: every write is a 404
	done := placement(11, "ASK.DAT")
	result(t, s.start(t, contract.PlacementWorkflowType, done.WorkflowID(), done), 30*time.Second)

	out := starterCLI(t, bin, env, true, "retry", "--workflow-id", parked, "--request-id", "ticket-1", "--by", "ops", "--wait", "30s")
	require.Contains(t, out, "accepted   "+parked+": retry (request ticket-1)")
	require.Contains(t, out, "dead-lettered again  "+parked)
	require.Equal(t, 1, s.waitState(t, parked, contract.StateDeadLettered, 10*time.Second).Retries)

	// The same request again (a re-run command): refused, the record not retried a second time.
	out = starterCLI(t, bin, env, false, "retry", "--workflow-id", parked, "--request-id", "ticket-1")
	require.Contains(t, out, "refused    "+parked+": already acted on request ticket-1")
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", parked, "--name", "retry", "--input", `{"requestId":"ticket-1"}`)
	// A malformed signal is logged and ignored; it does not hold back what comes after it.
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", parked, "--name", "retry", "--input", `{"reason": 42}`)
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", parked, "--name", "abandon", "--input", `"not an object"`)
	time.Sleep(time.Second)
	st := s.query(t, parked)
	require.Equal(t, contract.StateDeadLettered, st.State)
	require.Equal(t, 1, st.Retries, "neither the same request nor a malformed one acted")

	out = starterCLI(t, bin, env, false, "abandon", "--workflow-id", done.WorkflowID())
	require.Contains(t, out, "refused    "+done.WorkflowID()+": closed")
	out = starterCLI(t, bin, env, true, "abandon", "--workflow-id", parked, "--reason", "placement deleted", "--by", "ops")
	require.Contains(t, out, "accepted   "+parked+": abandon")
	s.waitState(t, parked, contract.StateAbandoned, 10*time.Second)
	out = starterCLI(t, bin, env, false, "abandon", "--workflow-id", parked)
	require.Contains(t, out, "refused    "+parked)
}

// A job's worker killed mid-chunk: the chunk is sent again, and no record acts twice on it.
func TestJobWorkerKilledMidChunkRetriesEachRecordOnce(t *testing.T) {
	t.Parallel()
	s, workerBin := processStack(t)
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}
	w := startWorkerProcess(t, workerBin, s)
	const n = 20
	var dead []string
	for i := int64(0); i < n; i++ {
		m := placement(7100+i, "CHUNK.DAT") // unknown to TCS: a retry dead-letters again
		s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
		dead = append(dead, m.WorkflowID())
	}
	waitCount(t, s.tm.Client, `WritebackState="DeadLettered"`, n, 60*time.Second)

	out := starterCLI(t, bin, env, true, "retry", "--all", "--rate", "5", "--canary", "0", "--max-failure-ratio", "1", "--no-wait")
	job := jobIDOf(t, out)
	// Kill the worker while a chunk is going out (5 requests over a second).
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="Updating"`) > 0 }, 30*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, w.cmd.Process.Kill())
	<-w.done
	startWorkerProcess(t, workerBin, s)

	var st map[string]any
	require.Eventually(t, func() bool { st = jobState(t, bin, env, job); return st["state"] == "Done" }, 3*time.Minute, time.Second)
	require.EqualValues(t, n, st["signalled"], "%v", st)
	require.EqualValues(t, n, st["deadLettered"], "%v", st)
	for _, id := range dead {
		require.Equal(t, 1, s.waitState(t, id, contract.StateDeadLettered, 30*time.Second).Retries, id)
	}
}

// jobs cancel stops the signalling within a second, and the job counts exactly what it signalled.
func TestJobCancelStopsTheBatchInFlight(t *testing.T) {
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}
	const n = 40
	for i := int64(0); i < n; i++ {
		m := placement(7200+i, "CANCEL.DAT")
		s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	}
	waitCount(t, s.tm.Client, `WritebackState="DeadLettered"`, n, 60*time.Second)

	job := jobIDOf(t, starterCLI(t, bin, env, true, "abandon", "--all", "--rate", "4", "--no-wait"))
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="Abandoned"`) >= 6 }, 30*time.Second, 50*time.Millisecond)
	starterCLI(t, bin, env, true, "jobs", "cancel", job)
	cancelled := time.Now()
	var st map[string]any
	require.Eventually(t, func() bool { st = jobState(t, bin, env, job); return st["state"] == "Cancelled" }, 10*time.Second, 100*time.Millisecond)
	t.Logf("MEASURED: job Cancelled %.2f s after jobs cancel returned", time.Since(cancelled).Seconds())
	time.Sleep(time.Until(cancelled.Add(time.Second)))
	atOne := count(t, s.tm.Client, `WritebackState="Abandoned"`)
	time.Sleep(4 * time.Second)
	later := count(t, s.tm.Client, `WritebackState="Abandoned"`)
	require.Equal(t, atOne, later, "nothing signalled more than a second after the cancel")
	st = jobState(t, bin, env, job)
	require.EqualValues(t, later, st["signalled"], "the job counts exactly what it signalled: %v", st)
	require.EqualValues(t, later, st["abandoned"], "and what became of them: %v", st)
	require.Less(t, later, n)
	sum := 0
	for _, k := range []string{"completed", "deadLettered", "abandoned", "skipped", "pending"} {
		sum += int(st[k].(float64))
	}
	require.Equal(t, n, sum, "every record of the job is counted once: %v", st)
}

// --dry-run prints the job's exact plan: what it will retry and, marked, what it will skip and why
// (here: a record already retried --max-retries times); --ids-file reads the plan back, an ID's
// trailing space included (a filename may end in one), and the job does exactly that.
func TestDryRunIsTheJobsPlan(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}
	plain := s.deadLetter(t, 7301, "PLAN.DAT")
	spaced := s.deadLetter(t, 7302, "PLAN.DAT ")
	retried := s.deadLetter(t, 7303, "PLAN.DAT")
	starterCLI(t, bin, env, true, "retry", "--workflow-id", retried, "--wait", "30s") // TCS still lacks it: parked again
	require.Equal(t, 1, s.waitState(t, retried, contract.StateDeadLettered, 30*time.Second).Retries)

	plan := starterCLI(t, bin, env, true, "retry", "--all", "--dry-run", "--max-retries", "1")
	require.Contains(t, plan, "would signal retry to 2 workflow(s):\n  "+plain+"\n  "+spaced+"\n")
	require.Contains(t, plan, "skipped    "+retried+": already retried 1 times (--max-retries 1)")
	file := t.TempDir() + "/plan.txt"
	require.NoError(t, os.WriteFile(file, []byte(plan), 0o644))

	s.sim.Store.MakeKnown([]int64{7301, 7302, 7303}, nil, false)
	out := starterCLI(t, bin, env, true, "retry", "--ids-file", file, "--max-retries", "1", "--canary", "0", "--wait", "60s")
	st := jobState(t, bin, env, jobIDOf(t, out))
	require.Equal(t, "Done", st["state"], "%v", st)
	require.EqualValues(t, 2, st["signalled"], "%v", st)
	require.EqualValues(t, 2, st["completed"], "%v", st)
	require.EqualValues(t, 0, st["skipped"], "the plan's skipped line is not an ID: %v", st)
	require.Equal(t, contract.StateCompleted, s.query(t, spaced).State, "the ID with its trailing space")
	require.Equal(t, contract.StateDeadLettered, s.query(t, retried).State)
}
