package integration_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/testenv"
)

const (
	secretToken  = "tcs-s3cret-7f1e"
	secretAPIKey = "temporal-apikey-s3cret-91ab"
	secretAMQPPw = "amqp-pw-s3cret-44cd"
)

// secretEnv puts every secret the programs take into their environment.
func secretEnv() []string {
	return append(os.Environ(), "TCS_TOKEN="+secretToken, "TEMPORAL_API_KEY="+secretAPIKey,
		"AMQP_URL=amqp://guest:"+secretAMQPPw+"@127.0.0.1:1/")
}

func requireNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{secretToken, secretAPIKey, secretAMQPPw} {
		require.NotContains(t, out, s, "%s printed a secret:\n%s", what, out)
	}
}

// No secret reaches --help, a flag error or a log line; a malformed setting stops the program at
// start with an error naming it.
func TestSecretsNeverPrintedAndBadSettingsNamed(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	dir := t.TempDir()
	starter := testenv.Build(t, "./starter", dir)
	worker := testenv.Build(t, "./worker", dir)
	run := func(env []string, bin string, args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	for _, c := range [][]string{{starter, "consume", "--help"}, {starter, "retry", "--help"}, {starter, "reconcile", "--help"},
		{starter, "publish", "--help"}, {worker, "--help"}, {starter, "consume", "--no-such-flag"}, {worker, "--no-such-flag"},
		{starter, "reconcile", "--file", "/nonexistent", "--tcs-url", "http://127.0.0.1:1"}} {
		out, _ := run(secretEnv(), c[0], c[1:]...)
		requireNoSecret(t, strings.Join(c[1:], " "), out)
	}

	// Malformed settings: the process stops at once and names them.
	for _, tc := range []struct {
		bin  string
		args []string
		env  string
		want string
	}{
		{worker, nil, "RETRY_BUDGET=1 day", `RETRY_BUDGET="1 day"`},
		{worker, nil, "TCS_RATE=fast", `TCS_RATE="fast"`},
		{worker, nil, "TEMPORAL_ADDRESS=", "TEMPORAL_ADDRESS (flag -temporal-address) is set but empty"},
		{starter, []string{"consume"}, "PREFETCH=abc", `PREFETCH="abc"`},
		{starter, []string{"consume"}, "DRAIN_TIMEOUT=soon", `DRAIN_TIMEOUT="soon"`},
	} {
		start := time.Now()
		out, code := run(append(secretEnv(), tc.env), tc.bin, tc.args...)
		require.Equal(t, 2, code, "%s: %s", tc.env, out)
		require.Contains(t, out, tc.want, tc.env)
		require.Less(t, time.Since(start), 10*time.Second, "stops at start, before dialling anything")
		requireNoSecret(t, tc.env, out)
	}
}

// The worker's and starter's own log lines never hold a secret, even when a dial fails.
func TestLogsHoldNoSecret(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	dir := t.TempDir()
	starter := testenv.Build(t, "./starter", dir)
	cmd := exec.Command(starter, "consume")
	cmd.Env = append(secretEnv(), "METRICS_ADDR="+freeAddr(t))
	logs := &testenv.Logs{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	time.Sleep(3 * time.Second) // it keeps trying to reach the (absent) broker and logs so
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	require.NotEmpty(t, logs.Lines("RabbitMQ"))
	requireNoSecret(t, "starter consume", strings.Join(logs.Lines(""), "\n"))
}
