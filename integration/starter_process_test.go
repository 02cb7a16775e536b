package integration_test

import (
	"net"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
)

func startStarterProcess(t *testing.T, bin string, b *testenv.Broker, temporalAddr string, args ...string) (*exec.Cmd, *testenv.Logs, chan error) {
	cmd := exec.Command(bin, append([]string{"consume"}, args...)...)
	cmd.Env = append(append(os.Environ(), b.Env()...), "TEMPORAL_ADDRESS="+temporalAddr, "METRICS_ADDR="+freeAddr(t), "PREFETCH=50")
	logs := &testenv.Logs{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, logs, done
}

func TestStarterKilledMidBatchThenRestarted(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	bin := testenv.Build(t, "./starter", t.TempDir())
	for i := int64(1); i <= 600; i++ {
		b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(i, "KILL.DAT"))
	}
	cmd, _, done := startStarterProcess(t, bin, b, tm.Address)
	require.Eventually(t, func() bool { return count(t, tm.Client, "") >= 100 }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, cmd.Process.Kill()) // SIGKILL mid-batch: unacked deliveries go back to the queue
	<-done
	killedWith := count(t, tm.Client, "")
	require.Less(t, killedWith, 600, "the kill came mid-batch")

	_, logs, _ := startStarterProcess(t, bin, b, tm.Address)
	waitCount(t, tm.Client, "", 600, 2*time.Minute)
	require.Eventually(t, func() bool { return b.Depth(t, b.Topology.PlacementQueue) == 0 }, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, 0, b.Depth(t, b.Topology.DLQ))
	t.Logf("killed with %d of 600 started; after restart every message has exactly one workflow", killedWith)
	require.Empty(t, logs.Lines(`"level":"ERROR"`))
}

func TestStarterGracefulStopAndHelp(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	bin := testenv.Build(t, "./starter", t.TempDir())
	cmd, logs, done := startStarterProcess(t, bin, b, tm.Address)
	require.Eventually(t, func() bool { return len(logs.Lines(`"msg":"consuming"`)) == 1 }, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("starter did not stop")
	}
	require.NotEmpty(t, logs.Lines("every delivery in flight was settled"))
	require.Empty(t, logs.Lines(`"level":"INFO"`, "OnStart hook"), "fx's own events are logged at debug")
	require.Empty(t, logs.Lines(`"level":"INFO"`, `"msg":"provided"`), "fx's own events are logged at debug")

	for _, c := range []string{"consume", "publish"} {
		out, err := exec.Command(bin, c, "--help").CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "Usage: "+bin+" "+c, "the usage names the program as it was run")
	}
}

func TestPublishFileAndDemo(t *testing.T) {
	t.Parallel()
	b, _ := intakeStack(t, 0)
	bin := testenv.Build(t, "./starter", t.TempDir())
	file := t.TempDir() + "/in.jsonl"
	lines := string(placementBody(1, "P1.DAT")) + "\n" + string(placementBody(2, "P2.DAT")) + "\n" +
		`{"scanId":"3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11","result":"CLEAN","fileName":"a.pdf","completedAt":"2026-11-22T09:15:00Z"}` + "\n"
	require.NoError(t, os.WriteFile(file, []byte(lines), 0o644))
	run := func(args ...string) string {
		cmd := exec.Command(bin, append([]string{"publish"}, args...)...)
		cmd.Env = append(os.Environ(), b.Env()...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	require.Contains(t, run("--file", file), "published 3, confirmed 3, failed 0")
	require.Equal(t, 2, b.Depth(t, b.Topology.PlacementQueue))
	require.Equal(t, 1, b.Depth(t, b.Topology.ScanQueue))
	require.Contains(t, run("--demo", "50", "--kind", "scan", "--seed", "3"), "published 50, confirmed 50")
	require.Equal(t, 51, b.Depth(t, b.Topology.ScanQueue))
	require.Contains(t, run("--demo", "100", "--seed", "4"), "published 100, confirmed 100")
	require.Equal(t, 153, b.Depth(t, b.Topology.PlacementQueue)+b.Depth(t, b.Topology.ScanQueue))
}

// AMQP_URL may name several nodes of one cluster: the starter connects to the first that answers
// (here the first is down) and its records flow as with one node. The password never reaches a log.
func TestStarterWithSeveralBrokerAddresses(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	bin := testenv.Build(t, "./starter", t.TempDir())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	require.NoError(t, l.Close()) // refused from now on
	u, err := url.Parse(testenv.AMQPURL(t))
	require.NoError(t, err)
	down := *u
	down.Host = dead
	cmd := exec.Command(bin, "consume")
	cmd.Env = append(append(os.Environ(), b.Env()...), "AMQP_URL="+down.String()+","+u.String(),
		"TEMPORAL_ADDRESS="+tm.Address, "METRICS_ADDR="+freeAddr(t))
	logs := &testenv.Logs{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := int64(1); i <= 20; i++ {
		b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(i, "NODES.DAT"))
	}
	waitCount(t, tm.Client, "", 20, time.Minute)
	if pw, ok := u.User.Password(); ok && len(pw) > 3 {
		require.Empty(t, logs.Lines(pw), "no password in the logs")
	}
}
