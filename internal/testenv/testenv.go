// Package testenv starts the real parts the integration tests need: a Temporal dev server from the
// pinned CLI in bin/, the TCS simulator, and the worker code, each stopped when the test ends.
package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/tis-writeback/writeback/activities"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/devserver"
	"github.com/tis-writeback/writeback/internal/logging"
	"github.com/tis-writeback/writeback/internal/telemetry"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/internal/workerapp"
	"github.com/tis-writeback/writeback/tcs/guard"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// RepoRoot finds the repository's root (the production module's directory) from the test's working
// directory, which may be inside one of the harness modules nested in it.
func RepoRoot(t testing.TB) string {
	dir, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// mainModule is the production module's path: its go.mod marks the repository's root.
const mainModule = "github.com/tis-writeback/writeback"

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(b) == mainModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the go.mod of %s is not found above the working directory", mainModule)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// TemporalCLI is the pinned Temporal CLI (make bin/temporal installs it).
func TemporalCLI(t testing.TB) string {
	if p := os.Getenv("WRITEBACK_TEMPORAL_CLI"); p != "" {
		return p
	}
	p := filepath.Join(RepoRoot(t), "bin", "temporal")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the pinned Temporal CLI is missing at %s: run `make bin/temporal`", p)
	}
	return p
}

// Temporal is a running dev server.
type Temporal struct {
	Address string
	Client  client.Client
	cli     string
}

// StartTemporal starts a dev server (in memory, no UI) with the writeback search attributes.
func StartTemporal(t testing.TB) *Temporal {
	t.Helper()
	return startTemporal(t, "")
}

// StartTemporalWithUI starts a dev server with its web UI on uiPort.
func StartTemporalWithUI(t testing.TB, uiPort string) *Temporal {
	t.Helper()
	return startTemporal(t, uiPort)
}

// StartTemporalWithArgs starts a headless dev server with extra arguments, e.g.
// "--dynamic-config-value", "limit.maxIDLength=100".
func StartTemporalWithArgs(t testing.TB, extra ...string) *Temporal {
	t.Helper()
	return startTemporal(t, "", extra...)
}

// StartBareTemporal starts a headless dev server without the writeback search attributes, as an
// operator who skipped that step would have.
func StartBareTemporal(t testing.TB) *Temporal {
	t.Helper()
	return startTemporalWith(t, "", false)
}

func startTemporal(t testing.TB, uiPort string, extra ...string) *Temporal {
	return startTemporalWith(t, uiPort, true, extra...)
}

func startTemporalWith(t testing.TB, uiPort string, searchAttributes bool, extra ...string) *Temporal {
	cli := TemporalCLI(t)
	args := append([]string(nil), extra...)
	if uiPort == "" {
		args = append(args, "--headless")
	}
	if searchAttributes {
		args = append(args, devserver.Flags()...)
	} else {
		args = append(args, "--dynamic-config-value", "matching.useNewMatcher=true")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: cli,
		LogLevel:     "error",
		EnableUI:     uiPort != "",
		UIPort:       uiPort,
		ExtraArgs:    args,
		ClientOptions: &client.Options{
			Logger: quietLogger(),
		},
		Stdout: io.Discard,
		Stderr: io.Discard,
	})
	if err != nil {
		t.Fatalf("start dev server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return &Temporal{Address: srv.FrontendHostPort(), Client: srv.Client(), cli: cli}
}

// quietLogger silences the SDK client's own logs in tests.
func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// CLI runs the real Temporal CLI against this server and returns its output.
func (tm *Temporal) CLI(t testing.TB, args ...string) string {
	t.Helper()
	args = append(args, "--address", tm.Address)
	out, err := exec.Command(tm.cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("temporal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// StartSim starts the TCS simulator on free ports.
func StartSim(t testing.TB, placements int64) *sim.Server {
	t.Helper()
	s, err := sim.Start(sim.Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Token: sim.DevToken, Placements: placements, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Logs collects a worker's JSON log lines.
type Logs struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }

// Lines returns the lines that contain every one of the given substrings.
func (l *Logs) Lines(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// Worker is the worker code running in this process.
type Worker struct {
	Guard   *guard.Guard
	Logs    *Logs
	Metrics string // base URL of /metrics
	// Stop stops the worker as SIGTERM does (it leaves the workers sharing the TCS cap); Vanish
	// stops it as a kill does, telling nobody.
	Stop, Vanish func()
}

// WorkerOptions tune a test worker.
type WorkerOptions struct {
	Retry      contract.RetrySettings
	TCSTimeout time.Duration
	TCSRate    float64
	// KeyHonoured: the simulator honours Idempotency-Key; skip the read before each write.
	KeyHonoured bool
	// DeploymentName and BuildID turn Worker Versioning on (both or neither).
	DeploymentName, BuildID string
	// Outage mode settings (zero: the worker's defaults).
	OutageWindow      time.Duration
	OutageMinFailures int
	OutageProbeEvery  time.Duration
}

var workerSeq atomic.Int64

// StartWorker runs the real worker code (the same constructors as ./worker) against tm and tcsURL.
func StartWorker(t testing.TB, tm *Temporal, tcsURL string, o WorkerOptions) *Worker {
	t.Helper()
	if o.Retry == (contract.RetrySettings{}) {
		o.Retry = contract.DefaultRetrySettings()
		o.Retry.AttemptTimeout = 0
	}
	if o.TCSTimeout == 0 {
		o.TCSTimeout = time.Second
	}
	if o.Retry.AttemptTimeout == 0 {
		o.Retry.AttemptTimeout = max(5*time.Second, 3*o.TCSTimeout)
	}
	if o.TCSRate == 0 {
		o.TCSRate = 500
	}
	cfg := &workerapp.Config{
		Temporal:                &temporalclient.Config{Address: tm.Address, Namespace: "default"},
		TCSURL:                  tcsURL,
		TCSToken:                sim.DevToken,
		TCSTimeout:              o.TCSTimeout,
		MetricsAddr:             "127.0.0.1:0",
		TCSRate:                 o.TCSRate,
		MaxConcurrentActivities: 100,
		StopTimeout:             5 * time.Second,
		Retry:                   o.Retry,
		OutageWindow:            o.OutageWindow,
		OutageMinFailures:       o.OutageMinFailures,
		OutageProbeEvery:        o.OutageProbeEvery,
		DeploymentName:          o.DeploymentName,
		BuildID:                 o.BuildID,
		Identity:                fmt.Sprintf("test-worker-%d-%d", os.Getpid(), workerSeq.Add(1)),
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &Logs{}
	log := logging.New(logs, slog.LevelInfo)
	reg := telemetry.NewRegistry()
	tcsMetrics := telemetry.NewTCSMetrics(reg)
	h, err := workerapp.NewTemporalHandler(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	gov, err := workerapp.NewGuard(cfg, tcsMetrics, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := telemetry.NewServer(cfg.MetricsAddr, reg, &telemetry.Health{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := workerapp.Dial(ctx, cfg, log, h)
	if err != nil {
		t.Fatal(err)
	}
	acts := activities.New(gov.TCS(), log, cfg.Retry)
	acts.KeyHonoured = o.KeyHonoured
	gov.Prime(context.Background(), cl)
	w := workerapp.NewWorker(cl, cfg, acts)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	govCtx, stopGov := context.WithCancel(context.Background())
	go gov.Run(govCtx, cl)
	var once sync.Once
	end := func(graceful bool) {
		once.Do(func() {
			w.Stop()
			stopGov()
			if graceful {
				gov.Leave(context.Background())
			}
			cl.Close()
			_ = srv.Shutdown(context.Background())
		})
	}
	stop := func() { end(true) }
	t.Cleanup(stop)
	return &Worker{Logs: logs, Metrics: fmt.Sprintf("http://%s/metrics", srv.Addr()), Stop: stop, Guard: gov,
		Vanish: func() { end(false) }}
}

// Build compiles a main package of this module (e.g. "./worker") into dir and returns the binary.
func Build(t testing.TB, pkg, dir string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
