package integration_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// workerProcess runs the real worker binary.
type workerProcess struct {
	cmd  *exec.Cmd
	logs *testenv.Logs
	done chan error
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func startWorkerProcess(t *testing.T, bin string, s *stack, extra ...string) *workerProcess {
	cmd := exec.Command(bin, extra...)
	cmd.Env = append(os.Environ(),
		"TEMPORAL_ADDRESS="+s.tm.Address, "TEMPORAL_NAMESPACE=default", "TCS_URL="+s.sim.URL(), "TCS_TOKEN="+sim.DevToken,
		"METRICS_ADDR="+freeAddr(t), "TCS_TIMEOUT=5s", "ATTEMPT_TIMEOUT=10s", "STOP_TIMEOUT=15s")
	logs := &testenv.Logs{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	p := &workerProcess{cmd: cmd, logs: logs, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	require.Eventually(t, func() bool { return len(logs.Lines(`"msg":"worker started"`)) == 1 }, 30*time.Second, 50*time.Millisecond,
		"worker did not start")
	return p
}

// processStack has a dev server and the simulator, but no in-process worker.
func processStack(t *testing.T) (*stack, string) {
	if testing.Short() {
		t.Skip("integration test: needs the dev server")
	}
	bin := testenv.Build(t, "./worker", t.TempDir())
	return &stack{tm: testenv.StartTemporal(t), sim: testenv.StartSim(t, 1000)}, bin
}

func waitInFlight(t *testing.T, s *stack, endpoint string) {
	require.Eventually(t, func() bool { return s.sim.Store.InFlight(endpoint) > 0 }, 10*time.Second, 10*time.Millisecond)
}

func TestSIGTERMLetsTheRunningActivityFinish(t *testing.T) {
	t.Parallel()
	s, bin := processStack(t)
	s.sim.Store.SetFaults(sim.Faults{LatencyMs: 3000, Only: "/esr-exported"})
	w := startWorkerProcess(t, bin, s)
	m := placement(500, "TERM.DAT")
	run := s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
	waitInFlight(t, s, "POST esr-exported")

	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-w.done:
		require.NoError(t, err, "exit status after SIGTERM\n%s", w.logs.Lines(""))
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop within its stop timeout")
	}
	require.Equal(t, 1, s.sim.Store.ExportedCount(500, "TERM.DAT"), "the running activity finished before the worker stopped")

	startWorkerProcess(t, bin, s) // a worker to run the workflow's last task
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var st contract.Status
	require.NoError(t, run.Get(ctx, &st))
	require.Equal(t, contract.StateCompleted, st.State)
	require.Equal(t, 1, st.Attempts, "the attempt was not cut short and re-run")
}

func TestWorkerKilledMidActivity(t *testing.T) {
	t.Parallel()
	s, bin := processStack(t)
	s.sim.Store.SetFaults(sim.Faults{LatencyMs: 2000, Only: "/esr-exported"})
	w := startWorkerProcess(t, bin, s)
	var ids []string
	for i := int64(0); i < 5; i++ {
		m := placement(600+i, "KILL.DAT")
		s.start(t, contract.PlacementWorkflowType, m.WorkflowID(), m)
		ids = append(ids, m.WorkflowID())
	}
	waitInFlight(t, s, "POST esr-exported")
	require.NoError(t, w.cmd.Process.Kill()) // SIGKILL: no chance to finish or report
	<-w.done
	s.sim.Store.SetFaults(sim.Faults{})

	killedAt := time.Now()
	startWorkerProcess(t, bin, s)
	for _, id := range ids {
		s.waitState(t, id, contract.StateCompleted, 60*time.Second)
	}
	t.Logf("MEASURED: after SIGKILL mid-activity, all 5 records Completed %.1f s later (attempt timeout 10 s)", time.Since(killedAt).Seconds())
	for i := int64(0); i < 5; i++ {
		require.Equal(t, 1, s.sim.Store.ExportedCount(600+i, "KILL.DAT"), fmt.Sprint("placement ", 600+i))
	}
}
