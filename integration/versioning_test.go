package integration_test

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
)

// roll replaces the running worker by one of build buildID the way a Deployment's rolling update does
// (the new pod first, then SIGTERM to the old one), then runs what the chart's hook runs.
func roll(t *testing.T, s *stack, workerBin, starterBin string, old *workerProcess, buildID string) *workerProcess {
	t.Helper()
	w := startWorkerProcess(t, workerBin, s, "--deployment-name", "writeback", "--build-id", buildID)
	require.NoError(t, old.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-old.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the old worker did not stop")
	}
	out := starterCLI(t, starterBin, []string{"TEMPORAL_ADDRESS=" + s.tm.Address}, true,
		"versioning", "set-current", "--deployment-name", "writeback", "--build-id", buildID, "--wait", "60s")
	require.Contains(t, out, buildID)
	return w
}

// Worker Versioning as the chart configures it: after a rolling deploy no worker of the old build is
// left, so records flow only once the new build is the deployment's current version. The chart's hook
// runs `starter versioning set-current`; this test runs it the same way, from unversioned workers to
// a first build and on to a second, with a record parked under the first build retried under the last.
func TestRollingDeployToANewBuildKeepsRecordsFlowing(t *testing.T) {
	t.Parallel()
	s, workerBin := processStack(t)
	starterBin := testenv.Build(t, "./starter", t.TempDir())
	env := []string{"TEMPORAL_ADDRESS=" + s.tm.Address}

	w := startWorkerProcess(t, workerBin, s) // unversioned, as before versioning is turned on
	m := placement(701, "ROLL-0.DAT")
	s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	s.waitState(t, m.WorkflowID(), contract.StateCompleted, 30*time.Second)

	w = roll(t, s, workerBin, starterBin, w, "b1")
	m = placement(702, "ROLL-1.DAT")
	s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	s.waitState(t, m.WorkflowID(), contract.StateCompleted, 30*time.Second)
	parked := s.deadLetter(t, 5001, "ROLL-PARKED.DAT") // unknown to TCS: parked under b1

	w = roll(t, s, workerBin, starterBin, w, "b2")
	m = placement(703, "ROLL-2.DAT")
	s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	s.waitState(t, m.WorkflowID(), contract.StateCompleted, 30*time.Second)

	s.sim.Store.MakeKnown([]int64{5001}, nil, false)
	starterCLI(t, starterBin, env, true, "retry", "--workflow-id", parked, "--reason", "created in TCS", "--by", "test")
	st := s.waitState(t, parked, contract.StateCompleted, 30*time.Second)
	require.Equal(t, 1, s.sim.Store.ExportedCount(5001, "ROLL-PARKED.DAT"), "the parked record, retried on b2: %+v", st)

	// Setting a build that no worker ever ran is refused (no pollers): the hook waits, then fails loudly.
	cmdOut := starterCLI(t, starterBin, env, false, "versioning", "set-current", "--deployment-name", "writeback",
		"--build-id", "never-ran", "--wait", "3s")
	require.NotContains(t, cmdOut, "never-ran is current")
	out := starterCLI(t, starterBin, env, true, "versioning", "status", "--deployment-name", "writeback")
	require.True(t, strings.Contains(out, "current build b2"), "status after a refused set-current: %s", out)
	t.Logf("versioning status:\n%s", out)
	var vs struct {
		Deployment string
		Current    *string
		Builds     []struct{ BuildID, State string }
	}
	require.NoError(t, json.Unmarshal([]byte(starterCLI(t, starterBin, env, true, "versioning", "status", "--deployment-name", "writeback", "--json")), &vs))
	require.Equal(t, "writeback", vs.Deployment)
	require.NotNil(t, vs.Current)
	require.Equal(t, "b2", *vs.Current)
	states := map[string]string{}
	for _, b := range vs.Builds {
		states[b.BuildID] = b.State
	}
	require.Equal(t, "current", states["b2"])

	// Versioning turned off again (a chart without a deployment name, or a rollback to one): the
	// unversioned workers get the records once the hook made them current, without knowing the name.
	u := startWorkerProcess(t, workerBin, s)
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	<-w.done
	out = starterCLI(t, starterBin, env, true, "versioning", "set-current", "--unversioned", "--by", "test")
	require.Contains(t, out, "deployment writeback: unversioned workers are current (before: build b2)")
	m = placement(704, "ROLL-OFF.DAT")
	s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	s.waitState(t, m.WorkflowID(), contract.StateCompleted, 30*time.Second)
	out = starterCLI(t, starterBin, env, true, "versioning", "set-current", "--unversioned")
	require.Contains(t, out, "no worker deployment has a current build", "a second run has nothing to do")
	_ = u
}
