package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/starter/ops"
)

// run executes a command line in this process and returns its exit code and what it printed.
func run(t *testing.T, args ...string) (code int, out, errOut string) {
	t.Helper()
	var o, e bytes.Buffer
	stdout, stderr = &o, &e
	t.Cleanup(func() { stdout, stderr = nil, nil })
	code = execute(args)
	return code, o.String(), e.String()
}

// Every command answers --help with its usage (the program as it was run, so it can be pasted),
// exit 0.
func TestHelpOnEveryCommand(t *testing.T) {
	root := newRoot()
	paths := [][]string{{}}
	for _, c := range root.Commands() {
		paths = append(paths, []string{c.Name()})
		for _, s := range c.Commands() {
			paths = append(paths, []string{c.Name(), s.Name()})
		}
	}
	require.Greater(t, len(paths), 20, "every command and subcommand")
	for _, p := range paths {
		code, out, errOut := run(t, append(p, "--help")...)
		require.Equal(t, 0, code, "%v: %s", p, errOut)
		require.Contains(t, out, "Usage: "+strings.TrimSpace(prog+" "+strings.Join(p, " ")), p)
	}
}

// A command line a command cannot run exits 2 before anything is dialled, saying what was wrong.
func TestRefusedCommandLines(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "needs one of its commands"},
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"consume", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"tcs"}, "needs one of its commands"},
		{[]string{"tcs", "status", "--reset"}, "unknown flag: --reset"},
		{[]string{"tcs", "status", "extra"}, `unknown command "extra"`},
		{[]string{"tcs", "hold"}, "tcs hold needs --reason"},
		{[]string{"tcs", "hold", "--reason"}, "flag needs an argument"},
		{[]string{"tcs", "rate"}, "needs N (requests per second) or --reset"},
		{[]string{"tcs", "rate", "abc"}, `rate "abc": want a number`},
		{[]string{"tcs", "rate", "0"}, `rate "0": want a number`},
		{[]string{"tcs", "rate", "NaN"}, `rate "NaN": want a number`},
		{[]string{"tcs", "rate", "5", "--reset"}, "N or --reset, not both"},
		{[]string{"tcs", "rate", "1", "2"}, "accepts at most 1 arg"},
		{[]string{"tcs", "release", "--rate", "3"}, "unknown flag: --rate"},
		{[]string{"jobs", "show"}, "needs a JOB-ID"},
		{[]string{"jobs", "cancel", "a", "b"}, "needs a JOB-ID"},
		{[]string{"jobs", "cancel", "--json", "a"}, "unknown flag: --json"},
		{[]string{"jobs", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"ledger", "show"}, "needs a DAY (YYYY-MM-DD)"},
		{[]string{"ledger", "show", "2026-13-01"}, `day "2026-13-01" is not YYYY-MM-DD`},
		{[]string{"ledger", "show", "2026-12-01", "--report-only"}, "unknown flag: --report-only"},
		{[]string{"ledger", "run", "2026-12-05", "--to", "2026-12-01"}, "must be from 2026-12-05"},
		{[]string{"retry"}, "give exactly one of --workflow-id"},
		{[]string{"retry", "--all", "--group", "tcs-404"}, "exactly one"},
		{[]string{"retry", "--all", "--record-file", "x.json"}, "--record-file needs --workflow-id"},
		{[]string{"retry", "--ids-file", "/nonexistent/ids"}, "/nonexistent/ids"},
		{[]string{"abandon", "--workflow-id", "w", "--record-file", "x.json"}, "unknown flag: --record-file"},
		{[]string{"history"}, "--workflow-id is required"},
		{[]string{"history", "--workflow-id", "w", "extra"}, `unknown command "extra"`},
		{[]string{"versioning", "status"}, "needs --deployment-name"},
		{[]string{"versioning", "set-current", "--deployment-name", "d"}, "exactly one of --build-id"},
		{[]string{"versioning", "set-current", "--build-id", "b", "--unversioned"}, "exactly one of --build-id"},
		{[]string{"versioning", "set-current", "--build-id", "b"}, "needs --deployment-name"},
		{[]string{"versioning", "rollout", "--build-id", "b"}, "a rollout needs a deployment name and a build ID"},
		{[]string{"versioning", "rollout", "--deployment-name", "d", "--build-id", "b", "--steps", "50,10"}, "each must be above the one before"},
		{[]string{"versioning", "rollout", "--deployment-name", "d", "--build-id", "b", "--steps", "10,abc"}, `"abc" is not a percentage`},
		{[]string{"versioning", "rollout", "--deployment-name", "d", "--build-id", "b", "--steps", "10,100"}, "below 100 (100 is current)"},
		{[]string{"versioning", "rollout", "--deployment-name", "d", "--build-id", "b", "--build-workers", "w"}, "not in a Kubernetes pod"},
		{[]string{"versioning", "rollout", "--deployment-name", "d", "--build-id", "b", "--previous-workers", "w"}, "--previous-workers needs --previous-build-id"},
		{[]string{"reconcile"}, "--file is required"},
		{[]string{"publish"}, "give exactly one of --file F or --demo N"},
		{[]string{"redrive", "now"}, `unknown command "now"`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, errOut := run(t, c.args...)
			require.Equal(t, 2, code, "stdout %q stderr %q", out, errOut)
			require.Contains(t, errOut, c.want)
			require.Empty(t, out, "a refusal prints on standard error only")
		})
	}
}

// A malformed setting in the environment is named, exit 2; a flag on the command line wins over it.
func TestSettingsFromTheEnvironment(t *testing.T) {
	t.Setenv("TEMPORAL_DEPLOYMENT_NAME", "")
	t.Setenv("SIGNAL_RATE", "fast")
	code, _, errOut := run(t, "retry", "--all")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `SIGNAL_RATE="fast"`)

	t.Setenv("SIGNAL_RATE", "5")
	t.Setenv("TEMPORAL_BUILD_ID", "b1")
	code, _, errOut = run(t, "versioning", "set-current", "--unversioned")
	require.Equal(t, 2, code, "TEMPORAL_BUILD_ID counts as --build-id: not both")
	require.Contains(t, errOut, "exactly one of --build-id")
}

func TestRateCommand(t *testing.T) {
	cmd, err := rateCommand([]string{"2.5"}, false, "why", "me")
	require.NoError(t, err)
	require.Equal(t, contract.TCSCommand{Op: contract.TCSRate, Rate: 2.5, Reason: "why", By: "me"}, *cmd)
	cmd, err = rateCommand(nil, true, "", "me")
	require.NoError(t, err)
	require.Equal(t, contract.TCSRateReset, cmd.Op)
	for _, bad := range []string{"-1", "0", "Inf", "1e400", "x"} {
		_, err := rateCommand([]string{bad}, false, "", "")
		require.Error(t, err, bad)
	}
}

func capture(t *testing.T, f func()) string {
	t.Helper()
	var o bytes.Buffer
	stdout = &o
	t.Cleanup(func() { stdout = nil })
	f()
	return o.String()
}

func TestTCSStatusOutput(t *testing.T) {
	st := contract.TCSStatus{Mode: "hold", Since: "2026-12-06T10:00:00Z", Reason: "TCS maintenance", By: "ops", Rate: 20,
		RateSource: "tcs rate", Workers: []string{"w1", "w2"}}
	out := capture(t, func() { printTCSStatus(st, true, false) })
	require.Equal(t, "mode   hold since 2026-12-06T10:00:00Z (by ops: TCS maintenance)\n"+
		"rate   20 requests/s for all workers (tcs rate)\nworkers 2 present, each taking an equal share\nworkers apply it within 10 s\n", out)

	out = capture(t, func() { printTCSStatus(contract.TCSStatus{Mode: "normal", RateSource: "TCS_RATE"}, false, false) })
	require.Contains(t, out, "rate   none reported: no worker present", "never a rate of the CLI's own")

	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(capture(t, func() { printTCSStatus(st, false, true) })), &got))
	for _, k := range []string{"mode", "since", "reason", "by", "rate", "rateSource"} {
		require.Contains(t, got, k)
	}
	require.Equal(t, "hold", got["mode"])
	require.EqualValues(t, 20, got["rate"])
}

func TestJobOutput(t *testing.T) {
	st := contract.JobStatus{ID: "job-1", State: contract.JobHalted, HaltReason: "canary dead-lettered again", Total: 5, Signalled: 1,
		DeadLettered: 1, Skipped: 1, Pending: 3, By: "ops", Reason: "TCS fixed", StartedAt: "2026-12-06T10:00:00Z",
		Recent: []contract.JobFailure{{WorkflowID: "wf-1", What: contract.JobOutcomeDeadLettered, Reason: "TCS answered 404"}}}
	out := capture(t, func() { printJob(st) })
	require.Contains(t, out, "job job-1: Halted (canary dead-lettered again), by ops: TCS fixed, started 2026-12-06T10:00:00Z\n")
	require.Contains(t, out, "dead-lettered again  wf-1: TCS answered 404\n")

	b, err := json.Marshal(jobJSON(st))
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	for _, k := range []string{"id", "state", "total", "signalled", "completed", "deadLettered", "abandoned", "skipped", "pending",
		"haltReason", "by", "reason", "startedAt"} {
		require.Contains(t, got, k)
	}
	require.EqualValues(t, 3, got["pending"])
}

// --dry-run prints the plan as --ids-file reads it back: the IDs it would signal, the skipped marked.
func TestPlanOutputReadsBackAsIDs(t *testing.T) {
	plan := []ops.Step{{WorkflowID: "placement-1-A.DAT "}, {WorkflowID: "scan-2"}, {WorkflowID: "scan-3", Skip: "closed (Completed)"}}
	out := capture(t, func() { printPlan(contract.SignalRetry, plan) })
	require.Contains(t, out, "skipped    scan-3: closed (Completed)\n")
	require.Contains(t, out, "retry: would signal 2, skip 1\n")
	path := t.TempDir() + "/ids"
	require.NoError(t, os.WriteFile(path, []byte(out), 0o600))
	ids, err := readIDs(path)
	require.NoError(t, err)
	require.Equal(t, []string{"placement-1-A.DAT ", "scan-2"}, ids, "a trailing space of an ID survives")
}

func TestOutcomeTable(t *testing.T) {
	out := capture(t, func() {
		printOutcomes([]ops.Outcome{{WorkflowID: "a", Result: ops.OutcomeCompleted}, {WorkflowID: "b", Result: ops.OutcomeDeadLettered, Reason: "422"},
			{WorkflowID: "c", Result: ops.OutcomeUpdating}}, 0)
	})
	require.Contains(t, out, "dead-lettered again  b: 422\n")
	require.Contains(t, out, "still updating       c")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Equal(t, []string{"1", "1", "1", "0"}, strings.Fields(lines[len(lines)-1]))
}

func TestLedgerOutput(t *testing.T) {
	rep := contract.LedgerReport{ID: "ledger-1", Day: "2026-12-05", State: "Done", By: "schedule", StartedAt: "s", FinishedAt: "f",
		Counts: map[string]int{}, Checked: 4, Drift: 1, Repaired: 1,
		Records: []contract.LedgerDrift{{WorkflowID: "placement-1-A.DAT", What: "TCS has no EXPORTED event", Action: "written again"}}}
	out := capture(t, func() { printLedger(rep, false) })
	require.Contains(t, out, "ledger ledger-1 of 2026-12-05: Done, by schedule, started s, finished f\n")
	require.Contains(t, out, "rows read again in TCS: 4; drift: 1; written again: 1\n")
	require.Contains(t, out, "drift  placement-1-A.DAT: TCS has no EXPORTED event; written again\n")

	rep.Records = nil
	var got contract.LedgerReport
	require.NoError(t, json.Unmarshal([]byte(capture(t, func() { printLedger(rep, true) })), &got))
	require.NotNil(t, got.Records, "records is an empty list, never null")
}
