package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

var metricName = regexp.MustCompile(`\b(writeback_[a-z0-9_]+|temporal_[a-z0-9_]+)\b`)

// usedMetrics are the metric names the alert rules and the dashboard panels query.
func usedMetrics(t *testing.T) map[string][]string {
	used := map[string][]string{}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	b, err := os.ReadFile(filepath.Join(root(t), chart, "files", "alerts.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &rules))
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				used[m] = append(used[m], "alert "+r.Alert)
			}
		}
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	b, err = os.ReadFile(filepath.Join(root(t), chart, "files", "dashboard.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &dash))
	require.NotEmpty(t, dash.Panels)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				used[m] = append(used[m], "panel "+p.Title)
			}
		}
	}
	return used
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func startProcess(t *testing.T, bin string, env []string, args ...string) *testenv.Logs {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logs := &testenv.Logs{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return logs
}

func scrapeNames(t *testing.T, url string) map[string]bool {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		names[name] = true
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return names
}

// TestEveryAlertAndPanelMetricIsExported runs the real worker and starter binaries, sends records
// through them (one completes, one dead-letters), scrapes both, and checks every metric an alert or a
// panel queries is there: no alert that can never fire.
func TestEveryAlertAndPanelMetricIsExported(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the dev server and RabbitMQ")
	}
	used := usedMetrics(t)
	require.NotEmpty(t, used)

	tm := testenv.StartTemporal(t)
	simr := testenv.StartSim(t, 1000)
	b := testenv.StartBroker(t, 0)
	dir := t.TempDir()
	workerBin, starterBin := testenv.Build(t, "./worker", dir), testenv.Build(t, "./starter", dir)
	workerAddr, starterAddr := freeAddr(t), freeAddr(t)
	common := []string{"TEMPORAL_ADDRESS=" + tm.Address, "LOG_LEVEL=warn"}
	startProcess(t, workerBin, append(common, "TCS_URL="+simr.URL(), "TCS_TOKEN="+sim.DevToken, "METRICS_ADDR="+workerAddr))
	startProcess(t, starterBin, append(append(common, b.Env()...), "METRICS_ADDR="+starterAddr), "consume")

	ok := contract.PlacementExported{PlacementID: 5, PositionNumber: 1, PositionID: 1, Filename: "M.DAT", ExportedAt: time.Now().UTC()}
	dead := ok
	dead.PlacementID = 99999
	for _, m := range []contract.PlacementExported{ok, dead} {
		body, _ := json.Marshal(m)
		b.Publish(t, contract.RoutingKeyPlacementExported, body)
	}
	query := func(id string) string {
		v, err := tm.Client.QueryWorkflow(context.Background(), id, "", contract.QueryState)
		if err != nil {
			return ""
		}
		var st contract.Status
		_ = v.Get(&st)
		return st.State
	}
	require.Eventually(t, func() bool {
		return query(ok.WorkflowID()) == contract.StateCompleted && query(dead.WorkflowID()) == contract.StateDeadLettered
	}, 60*time.Second, 200*time.Millisecond)

	var exported map[string]bool
	require.Eventually(t, func() bool {
		exported = scrapeNames(t, "http://"+workerAddr+"/metrics")
		for n := range scrapeNames(t, "http://"+starterAddr+"/metrics") {
			exported[n] = true
		}
		for m := range used {
			if !exported[m] {
				return false
			}
		}
		return true
	}, 30*time.Second, time.Second)
	for m, where := range used {
		require.True(t, exported[m], "%s is queried by %v but neither the worker nor the starter exports it", m, where)
	}
}
