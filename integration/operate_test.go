package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/operate"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/starter/intake"
	"github.com/tis-writeback/writeback/starter/ops"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// starterCLI runs the real starter binary with an environment and returns its standard output.
func starterCLI(t *testing.T, bin string, env []string, wantOK bool, args ...string) string {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if wantOK {
		require.NoError(t, err, "starter %v\nstdout:\n%s\nstderr:\n%s", args, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// requestInHistory says whether an operator's request (a signal, or an accepted Update) carrying
// every one of subs is in the record's history.
func requestInHistory(t *testing.T, c client.Client, id string, subs ...string) bool {
	iter := c.GetWorkflowHistory(context.Background(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		in := ""
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
			in = a.GetInput().String()
		}
		if a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil {
			in = a.GetAcceptedRequest().GetInput().GetArgs().String()
		}
		all := in != ""
		for _, sub := range subs {
			all = all && strings.Contains(in, sub)
		}
		if all {
			return true
		}
	}
	return false
}

func (s *stack) deadLetter(t *testing.T, id int64, file string) string {
	m := placement(id, file)
	s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	s.waitState(t, m.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	return m.WorkflowID()
}

func TestRetryAndAbandonCommands(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}

	var dead []string
	for i := int64(0); i < 3; i++ {
		dead = append(dead, s.deadLetter(t, 5001+i, "UNKNOWN.DAT")) // TCS seeds 1..1000: 404, dead letter
	}
	other := s.deadLetter(t, 5009, "ABANDON.DAT")
	done := placement(10, "DONE.DAT")
	result(t, s.start(t, contract.PlacementWorkflowType, done.WorkflowID(), done), 30*time.Second)
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="DeadLettered"`) == 4 }, 10*time.Second, 100*time.Millisecond)

	out := starterCLI(t, bin, env, true, "retry", "--all", "--dry-run")
	require.Contains(t, out, "would signal retry to 4 workflow(s)")
	for _, id := range append(dead, other) {
		require.Contains(t, out, id)
	}
	require.Equal(t, 0, s.query(t, dead[0]).Retries, "a dry run signals nothing")

	out = starterCLI(t, bin, env, true, "abandon", "--query", `WritebackRecordId="5009"`, "--reason", "placement deleted", "--by", "ops")
	require.Contains(t, out, "abandon: signalled 1, skipped 0")
	require.Regexp(t, `completed\s+dead-lettered again\s+still updating\s+abandoned\s+skipped\s+not yet signalled\s+0\s+0\s+0\s+1\s+0\s+0`, out, "abandon tells the outcome")
	s.waitState(t, other, contract.StateAbandoned, 10*time.Second)

	// The cause is fixed: TCS now knows the placements.
	s.sim.Store.MakeKnown([]int64{5001, 5002, 5003}, nil, false)
	require.Eventually(t, func() bool {
		return count(t, s.tm.Client, `WritebackState="DeadLettered" AND ExecutionStatus="Running"`) == 3
	}, 10*time.Second, 100*time.Millisecond)
	out = starterCLI(t, bin, env, true, "retry", "--all", "--reason", "placements created in TCS", "--by", "ops")
	require.Contains(t, out, "retry: signalled 3, skipped 0")
	require.Regexp(t, `completed\s+dead-lettered again\s+still updating\s+abandoned\s+skipped\s+not yet signalled\s+3\s+0\s+0\s+0\s+0\s+0`, out, "retry tells the outcome")
	for i, id := range dead {
		st := s.waitState(t, id, contract.StateCompleted, 30*time.Second)
		require.Equal(t, 1, st.Retries)
		require.Equal(t, 1, s.sim.Store.ExportedCount(5001+int64(i), "UNKNOWN.DAT"))
	}
	// The reason and the operator are in the history.
	require.True(t, requestInHistory(t, s.tm.Client, dead[0], "placements created in TCS", "ops"), "the request's payload in history")

	out = starterCLI(t, bin, env, false, "retry", "--workflow-id", done.WorkflowID())
	require.Contains(t, out, "refused    "+done.WorkflowID()+": closed")
	out = starterCLI(t, bin, env, false, "retry")
	require.Empty(t, out)
}

func TestFindPagesThroughVisibility(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	for i := int64(0); i < 25; i++ {
		m := placement(6000+i, "PAGE.DAT")
		s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	}
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="DeadLettered"`) == 25 }, 60*time.Second, 200*time.Millisecond)
	targets, err := ops.Find(context.Background(), s.tm.Client, ops.Selection{All: true, PageSize: 7})
	require.NoError(t, err)
	require.Len(t, targets, 25)
	for _, tg := range targets {
		a, err := operate.Ask(context.Background(), s.tm.Client, tg.WorkflowID, "", contract.UpdateAbandon, "", contract.SignalPayload{})
		require.NoError(t, err)
		require.True(t, a.Accepted, a.Why)
	}
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="Abandoned"`) == 25 }, 30*time.Second, 200*time.Millisecond)
}

func TestRedriveCommand(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 1)
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := append(b.Env(), "TEMPORAL_ADDRESS="+tm.Address)

	// A message the broker dead-letters (delivery limit 1, requeued twice by a failing consumer).
	b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(77, "LIMIT.DAT"))
	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		if d, ok, _ := ch.Get(b.Topology.PlacementQueue, false); ok {
			_ = d.Nack(false, true)
		}
		return b.Depth(t, b.Topology.DLQ) == 1
	}, 20*time.Second, 50*time.Millisecond)
	ch.Close()
	// A poison message dead-lettered by the starter.
	c := startConsumer(t, b, tm.Client, 10)
	b.Publish(t, contract.RoutingKeyScanCompleted, []byte(`{"scanId":"nope"}`))
	require.Eventually(t, func() bool { return b.Depth(t, b.Topology.DLQ) == 2 }, 20*time.Second, 100*time.Millisecond)
	c.stop()

	out := starterCLI(t, bin, env, true, "redrive", "--dry-run")
	require.Contains(t, out, "would redrive 2")
	require.Contains(t, out, "dead-lettered by the broker (delivery_limit)")
	require.Contains(t, out, `is not a UUID`)
	var rd struct {
		DLQ      string `json:"dlq"`
		Messages []struct {
			RoutingKey, Reason, Outcome string
		} `json:"messages"`
		Redriven, WouldRedrive, Kept int
	}
	require.NoError(t, json.Unmarshal([]byte(starterCLI(t, bin, env, true, "redrive", "--dry-run", "--json")), &rd))
	require.Equal(t, b.Topology.DLQ, rd.DLQ)
	require.Equal(t, 2, rd.WouldRedrive)
	require.Len(t, rd.Messages, 2)
	keys := []string{rd.Messages[0].RoutingKey, rd.Messages[1].RoutingKey}
	require.ElementsMatch(t, []string{contract.RoutingKeyPlacementExported, contract.RoutingKeyScanCompleted}, keys)
	require.Eventually(t, func() bool { return b.Depth(t, b.Topology.DLQ) == 2 }, 5*time.Second, 100*time.Millisecond, "a dry run moves nothing")

	out = starterCLI(t, bin, env, true, "redrive", "--reason", "Temporal was down all weekend", "--by", "oncall")
	require.Contains(t, out, "redriven 2")
	require.Equal(t, 1, b.Depth(t, b.Topology.PlacementQueue))
	require.Equal(t, 1, b.Depth(t, b.Topology.ScanQueue))

	startConsumer(t, b, tm.Client, 10)
	waitCount(t, tm.Client, "", 1, 20*time.Second) // the good one became its workflow
	// It is recovery traffic, and its history names who brought it back and why.
	id := contract.PlacementExported{PlacementID: 77, Filename: "LIMIT.DAT"}.WorkflowID()
	desc, err := tm.Client.DescribeWorkflowExecution(context.Background(), id, "")
	require.NoError(t, err)
	require.EqualValues(t, contract.RecoveryPriority, desc.GetWorkflowExecutionInfo().GetPriority().GetPriorityKey())
	tl, err := ops.History(context.Background(), tm.Client, id)
	require.NoError(t, err)
	require.Contains(t, tl.Entries[0].Detail, "redriven from the DLQ")
	require.Contains(t, tl.Entries[0].Detail, "by oncall: Temporal was down all weekend")
	require.Eventually(t, func() bool { return b.Depth(t, b.Topology.DLQ) == 1 }, 20*time.Second, 100*time.Millisecond,
		"the still-poison one is back in the DLQ")
	d := b.Drain(t, b.Topology.DLQ)[0]
	require.Contains(t, d.Headers["x-writeback-error"], "is not a UUID")
	require.NotNil(t, d.Headers[intake.HeaderRedrivenAt])
}

func TestReconcileCommand(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address, "TCS_URL=" + s.sim.URL(), "TCS_TOKEN=" + sim.DevToken}

	present := []int64{11, 12}
	for _, id := range present {
		m := placement(id, "REC.DAT")
		result(t, s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m), 30*time.Second)
	}
	// 13 has a closed run whose write did not stick (abandoned dead letter); 14 never reached writeback.
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 422, Only: "/api/placements/13/esr-exported"})
	closed := s.deadLetter(t, 13, "REC.DAT")
	s.tm.CLI(t, "workflow", "signal", "--workflow-id", closed, "--name", contract.SignalAbandon)
	s.waitState(t, closed, contract.StateAbandoned, 10*time.Second)
	s.sim.Store.SetFaults(sim.Faults{})

	var lines []string
	for _, id := range []int64{11, 12, 13, 14, 99999} {
		lines = append(lines, string(placementBody(id, "REC.DAT")))
	}
	file := t.TempDir() + "/exported.jsonl"
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644))

	out := starterCLI(t, bin, env, true, "reconcile", "--file", file, "--dry-run")
	require.Contains(t, out, "missing  placement-esr/13/REC.DAT")
	require.Contains(t, out, "missing  placement-esr/14/REC.DAT")
	require.Contains(t, out, "unknown  placement-esr/99999/REC.DAT")
	require.Contains(t, out, "2 missing")
	var rc struct {
		Checked, Present, Missing, Unknown int
		MissingIDs                         []string `json:"missingIds"`
		UnknownIDs                         []string `json:"unknownIds"`
	}
	require.NoError(t, json.Unmarshal([]byte(starterCLI(t, bin, env, true, "reconcile", "--file", file, "--dry-run", "--json")), &rc))
	require.Equal(t, 5, rc.Checked)
	require.Equal(t, 2, rc.Present)
	require.Equal(t, 2, rc.Missing)
	require.Equal(t, []string{"placement-esr/13/REC.DAT", "placement-esr/14/REC.DAT"}, rc.MissingIDs)
	require.Equal(t, []string{"placement-esr/99999/REC.DAT"}, rc.UnknownIDs)
	require.Equal(t, 0, s.sim.Store.ExportedCount(14, "REC.DAT"))

	out = starterCLI(t, bin, env, true, "reconcile", "--file", file)
	require.Regexp(t, `checked\s+present\s+missing\s+started\s+running\s+dead letters\s+retried\s+unknown\s+failed`, out)
	require.Regexp(t, `5\s+2\s+2\s+2\s+0\s+0\s+0\s+1\s+0`, out)
	for _, id := range []int64{13, 14} {
		s.waitState(t, fmt.Sprintf("placement-esr/%d/REC.DAT", id), contract.StateCompleted, 30*time.Second)
		require.Equal(t, 1, s.sim.Store.ExportedCount(id, "REC.DAT"))
	}
	out = starterCLI(t, bin, env, true, "reconcile", "--file", file)
	require.Regexp(t, `5\s+4\s+0\s+0\s+0\s+0\s+0\s+1\s+0`, out, "running it twice is harmless")
	require.Equal(t, 0, s.sim.Store.Stats().Duplicates)
}

// Reconcile knows dead letters: a missing placement whose workflow is parked is reported as a dead
// letter with its reason (not as running), and --retry-dead-letters retries it.
func TestReconcileReportsAndRetriesDeadLetters(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address, "TCS_URL=" + s.sim.URL(), "TCS_TOKEN=" + sim.DevToken}
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 422, Only: "/api/placements/15/esr-exported"})
	parked := s.deadLetter(t, 15, "REC.DAT")
	file := t.TempDir() + "/exported.jsonl"
	require.NoError(t, os.WriteFile(file, append(placementBody(15, "REC.DAT"), '\n'), 0o644))

	out := starterCLI(t, bin, env, true, "reconcile", "--file", file, "--dry-run")
	require.Regexp(t, `dead letter\s+`+regexpQuote(parked)+`: .*422`, out)
	out = starterCLI(t, bin, env, true, "reconcile", "--file", file)
	require.Regexp(t, `1\s+0\s+1\s+0\s+0\s+1\s+0\s+0\s+0`, out, "reported as a dead letter, not as running:\n%s", out)
	require.Equal(t, contract.StateDeadLettered, s.query(t, parked).State)

	s.sim.Store.SetFaults(sim.Faults{})
	out = starterCLI(t, bin, env, true, "reconcile", "--file", file, "--retry-dead-letters", "--by", "ops")
	require.Contains(t, out, "retried     "+parked)
	st := s.waitState(t, parked, contract.StateCompleted, 30*time.Second)
	require.Equal(t, 1, st.Retries)
	require.Equal(t, 1, s.sim.Store.ExportedCount(15, "REC.DAT"))
}

// Reconcile is a job in the workers: the CLI holds no TCS setting at all; its reads go through the
// workers' guard, so a hold stops them (TCS gets no read while held, the job waits and goes on after
// the release); the job and the runs it starts name who started them.
func TestReconcileIsAJobUnderTheHold(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address, "TCS_URL=", "TCS_TOKEN=", "TCS_TOKEN_FILE="}
	m := placement(16, "HELD.DAT")
	result(t, s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m), 30*time.Second)
	file := t.TempDir() + "/exported.jsonl"
	body := string(placementBody(16, "HELD.DAT")) + "\n" + string(placementBody(17, "HELD.DAT")) + "\n" + string(placementBody(17, "HELD.DAT")) + "\n"
	require.NoError(t, os.WriteFile(file, []byte(body), 0o644))

	starterCLI(t, bin, env, true, "tcs", "hold", "--reason", "TCS restore", "--by", "test")
	require.Eventually(t, func() bool { m, _ := s.worker.Guard.Mode(); return m == contract.TCSModeHold }, 10*time.Second, 100*time.Millisecond)
	before := s.sim.Store.Stats().Requests["GET placement"]
	cmd := exec.Command(bin, "reconcile", "--file", file, "--by", "ops", "--reason", "restore check")
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var job string
	require.Eventually(t, func() bool {
		resp, err := s.tm.Client.ListWorkflow(t.Context(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf(`WritebackKind=%q`, contract.ReconcileKind)})
		if err != nil || len(resp.GetExecutions()) != 1 {
			return false
		}
		job = resp.GetExecutions()[0].GetExecution().GetWorkflowId()
		v, err := s.tm.Client.QueryWorkflow(t.Context(), job, "", contract.QueryReconcile)
		var rep contract.ReconcileReport
		return err == nil && v.Get(&rep) == nil && rep.Held >= 1
	}, 30*time.Second, 200*time.Millisecond, "the job waits for the hold; stderr: %s", &stderr)
	require.Equal(t, before, s.sim.Store.Stats().Requests["GET placement"], "no read during the hold")
	require.Empty(t, stdout.String(), "still waiting")

	starterCLI(t, bin, env, true, "tcs", "release")
	select {
	case err := <-exited:
		require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("reconcile did not finish after the release; stderr:\n%s", &stderr)
	}
	require.Regexp(t, `2\s+1\s+1\s+1\s+0\s+0\s+0\s+0\s+0`, stdout.String())
	require.Contains(t, stderr.String(), "reconcile job "+job)
	require.Contains(t, stderr.String(), "skipped (duplicate): placement-esr/17/HELD.DAT: the same placement and file as an earlier line")
	s.waitState(t, "placement-esr/17/HELD.DAT", contract.StateCompleted, 30*time.Second)
	require.Equal(t, 1, s.sim.Store.ExportedCount(17, "HELD.DAT"))

	d, err := s.tm.Client.DescribeWorkflowExecution(t.Context(), job, "")
	require.NoError(t, err)
	var details string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(d.GetExecutionConfig().GetUserMetadata().GetDetails(), &details))
	require.Equal(t, "by ops: restore check", details)
	d, err = s.tm.Client.DescribeWorkflowExecution(t.Context(), "placement-esr/17/HELD.DAT", "")
	require.NoError(t, err)
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(d.GetExecutionConfig().GetUserMetadata().GetDetails(), &details))
	require.Equal(t, "started by reconcile job "+job+" (by ops): TCS lacks the EXPORTED event", details)
}

// Failure groups: deadletters prints each group with its command and UI link; retry --group
// retries exactly that group and tells the outcome; edit-and-retry writes a corrected record and the
// CLI refuses a correction of another record, saying why.
func TestDeadLetterGroupsAndEditAndRetry(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address, "TEMPORAL_UI_URL=http://ui.example:8233"}
	var unknown []string
	for i := int64(0); i < 3; i++ {
		unknown = append(unknown, s.deadLetter(t, 7101+i, "UNKNOWN.DAT")) // 404
	}
	s.sim.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 422, Only: "/api/placements/71/esr-exported"})
	rejected := s.deadLetter(t, 71, "REJECTED.DAT")
	require.Eventually(t, func() bool {
		return count(t, s.tm.Client, `WritebackFailure="tcs-404"`) == 3 && count(t, s.tm.Client, `WritebackFailure="tcs-422"`) == 1
	}, 10*time.Second, 100*time.Millisecond)

	out := starterCLI(t, bin, env, true, "deadletters")
	// KIND GROUP COUNT OLDEST AGE NEWEST EXAMPLE
	require.Regexp(t, `placement\s+tcs-404\s+3\s+\S+\s+\d+s\s+\S+\s+placement-esr/710[123]/UNKNOWN.DAT`, out)
	require.Regexp(t, `placement\s+tcs-422\s+1\s+\S+\s+\d+s\s+\S+\s+`+regexpQuote(rejected), out)
	require.Contains(t, out, bin+" retry --group tcs-404", "the command to paste names the program as it was run")
	var dl struct {
		Groups []struct {
			Kind, Group, Example, Retry, UI string
			Count                           int
			OldestAgeSeconds                int64
		}
		Total int
	}
	require.NoError(t, json.Unmarshal([]byte(starterCLI(t, bin, env, true, "deadletters", "--json")), &dl))
	require.Equal(t, 4, dl.Total)
	require.Len(t, dl.Groups, 2)
	for _, g := range dl.Groups {
		require.Equal(t, "placement", g.Kind)
		require.GreaterOrEqual(t, g.OldestAgeSeconds, int64(0))
		require.Contains(t, g.UI, "http://ui.example:8233/namespaces/default/workflows?query=")
		if g.Group == "tcs-404" {
			require.Equal(t, 3, g.Count)
			require.Equal(t, bin+" retry --group tcs-404 --reason '…'", g.Retry)
		} else {
			require.Equal(t, "tcs-422", g.Group)
			require.Equal(t, rejected, g.Example)
		}
	}
	require.Contains(t, out, "http://ui.example:8233/namespaces/default/workflows?query=")
	require.Contains(t, out, "WritebackFailure%3D%22tcs-404%22")

	out = starterCLI(t, bin, env, true, "retry", "--group", "tcs-404", "--dry-run")
	require.Contains(t, out, "would signal retry to 3 workflow(s)")
	require.NotContains(t, out, rejected)
	// TCS still does not know them: they dead-letter again, and the table says so with the reason.
	out = starterCLI(t, bin, env, true, "retry", "--group", "tcs-404", "--reason", "try again", "--by", "ops", "--wait", "30s", "--canary", "0")
	require.Regexp(t, `^job retry-job-`, out, "a group retry runs as a job")
	require.Regexp(t, `completed\s+dead-lettered again\s+still updating\s+abandoned\s+skipped\s+not yet signalled\s+0\s+3\s+0\s+0\s+0\s+0`, out)
	require.Contains(t, out, "dead-lettered again  "+unknown[0]+": ")
	require.Contains(t, out, "404")

	// Edit and retry: a correction of another record is refused by the CLI, with the reason.
	s.sim.Store.SetFaults(sim.Faults{})
	foreign := t.TempDir() + "/foreign.json"
	require.NoError(t, os.WriteFile(foreign, placementBody(72, "REJECTED.DAT"), 0o644))
	cmd := exec.Command(bin, "retry", "--workflow-id", rejected, "--record-file", foreign)
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(b), "names placement 72")
	invalid := t.TempDir() + "/invalid.json"
	require.NoError(t, os.WriteFile(invalid, []byte(`{"placementId":71,"filename":"REJECTED.DAT"}`), 0o644))
	cmd = exec.Command(bin, "retry", "--workflow-id", rejected, "--record-file", invalid)
	cmd.Env = append(os.Environ(), env...)
	b, err = cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(b), `"positionNumber" is missing`)

	fixed := placement(71, "REJECTED.DAT")
	fixed.PositionID = 424242
	good := t.TempDir() + "/good.json"
	require.NoError(t, os.WriteFile(good, mustJSON(t, fixed), 0o644))
	out = starterCLI(t, bin, env, true, "retry", "--workflow-id", rejected, "--record-file", good, "--reason", "positionId fixed", "--by", "ops")
	require.Regexp(t, `completed\s+dead-lettered again\s+still updating\s+abandoned\s+1\s+0\s+0\s+0`, out)
	evs := s.sim.Store.Events(71)
	require.Len(t, evs, 2, "the FAILED mark and the EXPORTED event")
	found := false
	for _, ev := range evs {
		found = found || (ev.Status == "EXPORTED" && ev.PositionID == 424242)
	}
	require.True(t, found, "the corrected record was written: %+v", evs)

	// The record's timeline tells all of it.
	out = starterCLI(t, bin, env, true, "history", "--workflow-id", rejected)
	for _, want := range []string{"message ", `"placementId":71`, "first attempt (fast path) failed", "dead-lettered", "[tcs-422]",
		"update retry with a corrected record", "positionId fixed", "(by ops)", "written", "now: Completed"} {
		require.Contains(t, out, want)
	}
	var tl struct {
		Entries []map[string]any `json:"entries"`
		Now     map[string]any   `json:"now"`
	}
	require.NoError(t, json.Unmarshal([]byte(starterCLI(t, bin, env, true, "history", "--workflow-id", rejected, "--json")), &tl))
	require.Equal(t, "Completed", tl.Now["state"])
	require.NotEmpty(t, tl.Entries)
}

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }

// Retry jobs: the set is fixed at the start (--ids-file from a --dry-run), a canary goes first and
// halts the job when it dead-letters again, jobs resume/cancel, jobs show --json with the fields
// docs/operating.md lists (After a TCS incident: retry jobs), and
// --max-retries skips records retried too often.
func TestRetryJobs(t *testing.T) {
	t.Parallel()
	s := newStack(t, testenv.WorkerOptions{})
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}
	var dead []string
	for i := int64(0); i < 4; i++ {
		dead = append(dead, s.deadLetter(t, 8001+i, "JOB.DAT")) // unknown to TCS: 404
	}
	require.Eventually(t, func() bool { return count(t, s.tm.Client, `WritebackState="DeadLettered"`) == 4 }, 10*time.Second, 100*time.Millisecond)
	plan := starterCLI(t, bin, env, true, "retry", "--all", "--dry-run")
	file := t.TempDir() + "/ids.txt"
	// An ID with no parked record (here: none at all) is in the set, counted as skipped, never signalled.
	require.NoError(t, os.WriteFile(file, []byte(plan+"placement-esr/999999/NEVER.DAT\n"), 0o644))
	late := s.deadLetter(t, 8009, "LATE.DAT") // dead-lettered after the review: not in the job

	// TCS still lacks them: the canary dead-letters again and the job halts.
	out := starterCLI(t, bin, env, true, "retry", "--ids-file", file, "--reason", "first try", "--by", "ops", "--wait", "60s")
	first := strings.SplitN(out, "\n", 2)[0]
	require.Regexp(t, `^job retry-job-\S+$`, first)
	jobID := strings.TrimPrefix(first, "job ")
	require.Contains(t, out, "Halted (canary failed: ")
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(starterCLI(t, bin, env, true, "jobs", "show", jobID, "--json")), &st))
	require.Equal(t, "Halted", st["state"])
	require.EqualValues(t, 5, st["total"])
	require.EqualValues(t, 1, st["skipped"])
	require.EqualValues(t, 1, st["signalled"])
	require.EqualValues(t, 1, st["deadLettered"])
	require.EqualValues(t, 3, st["pending"])
	require.Equal(t, "ops", st["by"])
	for _, k := range []string{"id", "state", "total", "signalled", "completed", "deadLettered", "abandoned", "skipped", "pending", "haltReason", "by", "reason", "startedAt"} {
		require.Contains(t, st, k)
	}
	require.Contains(t, starterCLI(t, bin, env, true, "jobs"), jobID)
	var list []map[string]any
	require.NoError(t, json.Unmarshal([]byte(starterCLI(t, bin, env, true, "jobs", "--json")), &list))
	require.Len(t, list, 1)
	require.Equal(t, jobID, list[0]["id"])
	require.EqualValues(t, 5, list[0]["total"])

	// Fixed in TCS; the operator resumes: the rest complete; the late dead letter was never in the set.
	s.sim.Store.MakeKnown([]int64{8001, 8002, 8003, 8004, 8009}, nil, false)
	starterCLI(t, bin, env, true, "jobs", "resume", jobID)
	require.Eventually(t, func() bool {
		require.NoError(t, json.Unmarshal([]byte(starterCLI(t, bin, env, true, "jobs", "show", jobID, "--json")), &st))
		return st["state"] == "Done"
	}, 60*time.Second, 500*time.Millisecond)
	require.EqualValues(t, 3, st["completed"])
	require.Equal(t, contract.StateDeadLettered, s.query(t, late).State, "not in the job's fixed set")
	for _, id := range dead[1:] {
		require.Equal(t, contract.StateCompleted, s.query(t, id).State)
	}
	// The request names the job in the record's history.
	require.True(t, requestInHistory(t, s.tm.Client, dead[1], jobID), "the job's ID is in the request")

	// The first record was retried once already: with --max-retries 1 it is skipped.
	out = starterCLI(t, bin, env, true, "retry", "--workflow-id", dead[0], "--dry-run")
	require.Contains(t, out, "would signal retry to 1")
	out = starterCLI(t, bin, env, true, "retry", "--query", fmt.Sprintf("WorkflowId=%q", dead[0]), "--max-retries", "1", "--wait", "30s")
	require.Contains(t, out, "already retried 1 times")
	// A job can be cancelled.
	out = starterCLI(t, bin, env, true, "abandon", "--all", "--no-wait", "--rate", "0.2")
	jobID = strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "job ")
	starterCLI(t, bin, env, true, "jobs", "cancel", jobID)
	require.Eventually(t, func() bool {
		require.NoError(t, json.Unmarshal([]byte(starterCLI(t, bin, env, true, "jobs", "show", jobID, "--json")), &st))
		return st["state"] == "Cancelled"
	}, 60*time.Second, 500*time.Millisecond)
	// An ended job: a cancel finds it as asked (exit 0) and says so; a resume cannot (exit 1).
	out = starterCLI(t, bin, env, true, "jobs", "cancel", jobID)
	require.Contains(t, out, "job "+jobID+" has already ended (Cancelled): nothing to cancel")
	out = starterCLI(t, bin, env, false, "jobs", "resume", jobID)
	require.Contains(t, out, "has already ended (Cancelled): nothing to resume")
}
