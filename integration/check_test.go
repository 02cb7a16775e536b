package integration_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

type checkReport struct {
	OK     bool
	Checks []struct {
		Name, Detail string
		OK           bool
	}
}

func runCheck(t *testing.T, bin string, env []string, wantOK bool) checkReport {
	t.Helper()
	var r checkReport
	out := starterCLI(t, bin, env, wantOK, "check", "--wait", "5s", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	return r
}

func checkNamed(t *testing.T, r checkReport, name string) (bool, string) {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c.OK, c.Detail
		}
	}
	t.Fatalf("no check %q in %+v", name, r)
	return false, ""
}

// starter check (the chart's helm test) passes when a record can go end to end, and otherwise names
// the dependency that stops it: no starter on the queues, no worker on the task queue, TCS refusing
// the worker's token. It writes nothing to TCS.
func TestCheckNamesTheDependencyThatFails(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	s := testenv.StartSim(t, 1000)
	bin := testenv.Build(t, "./starter", t.TempDir())
	env := append(b.Env(), "TEMPORAL_ADDRESS="+tm.Address)

	// Nothing consumes the queues and no worker runs.
	r := runCheck(t, bin, env, false)
	require.False(t, r.OK)
	ok, detail := checkNamed(t, r, "temporal")
	require.True(t, ok, detail)
	ok, detail = checkNamed(t, r, "rabbitmq")
	require.False(t, ok)
	require.Contains(t, detail, "has no consumer")
	ok, detail = checkNamed(t, r, "end to end")
	require.False(t, ok)
	require.Contains(t, detail, "no worker took it within 5s")

	// A starter consumes and a worker runs: every check passes; TCS was read, never written.
	c := startConsumer(t, b, tm.Client, 10)
	// consuming every queue first: the check asks the broker at once (a fresh machine's first
	// consumer once took longer than that)
	require.Eventually(t, func() bool { return c.consumer.Ready() == nil }, 30*time.Second, 100*time.Millisecond)
	w := testenv.StartWorker(t, tm, s.URL(), testenv.WorkerOptions{})
	r = runCheck(t, bin, env, true)
	require.True(t, r.OK, "%+v", r)
	_, detail = checkNamed(t, r, "end to end")
	require.Contains(t, detail, "TCS answered 404 for placement 9223372036854775807")
	st := s.Store.Stats()
	require.NotEmpty(t, st.Requests["GET placement"], "the probe read TCS: %v", st.Requests)
	for ep := range st.Requests {
		require.True(t, strings.HasPrefix(ep, "GET "), "the probe only reads TCS: %v", st.Requests)
	}

	// TCS refuses the worker's token: the check says so.
	s.Store.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 401})
	r = runCheck(t, bin, env, false)
	ok, detail = checkNamed(t, r, "end to end")
	require.False(t, ok)
	require.Contains(t, detail, "TCS refuses the worker's token")
	s.Store.SetFaults(sim.Faults{})

	// The worker is gone: the probe waits for one, then says so.
	w.Stop()
	r = runCheck(t, bin, env, false)
	ok, detail = checkNamed(t, r, "end to end")
	require.False(t, ok)
	require.Contains(t, detail, "no worker took it")
}
