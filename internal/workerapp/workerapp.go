// Package workerapp builds the worker's parts: plain constructors that the worker's main wires with
// fx, and that tests call directly.
package workerapp

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/activities"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/buildinfo"
	"github.com/tis-writeback/writeback/internal/config"
	"github.com/tis-writeback/writeback/internal/operate"
	"github.com/tis-writeback/writeback/internal/telemetry"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/tcs/guard"
	"github.com/tis-writeback/writeback/workflows"
)

// Config is the worker's configuration.
type Config struct {
	Temporal     *temporalclient.Config
	TCSURL       string
	TCSToken     string
	TCSTokenFile string
	TCSTimeout   time.Duration
	MetricsAddr  string
	LogLevel     string
	// TCSRate caps the TCS requests per second of all workers together, every path: the TCS guard
	// owns the cap (not the task queue's rate limit, which would count activity tasks, not
	// requests, and miss the local first attempts).
	TCSRate float64
	// Identity names this worker to Temporal (default pid@host); workers sharing the TCS cap
	// count each other by it.
	Identity string
	// Outage mode (see guard.Options): the window and the failures that make an outage,
	// and how often a probe goes out during one.
	OutageWindow      time.Duration
	OutageMinFailures int
	OutageProbeEvery  time.Duration
	// TCSKeyHonoured: TCS honours the Idempotency-Key extension, so no read before each write.
	TCSKeyHonoured          bool
	MaxConcurrentActivities int
	StopTimeout             time.Duration
	Retry                   contract.RetrySettings
	// DeploymentName and BuildID turn on Worker Versioning (both or neither), so a rolling deploy
	// routes new workflow tasks to the new build while replay-safe code keeps old runs working.
	DeploymentName string
	BuildID        string
	// WorkflowCacheSize bounds the workflows kept in memory between tasks. Parked dead letters wait
	// for weeks; an evicted one replays its short history when a signal arrives.
	WorkflowCacheSize int
	// LedgerSchedule is the daily ledger's cron (UTC), "off" for none; LedgerReportOnly makes it list
	// drift without writing. Used when the schedule is missing; an existing one is left as it is.
	LedgerSchedule   string
	LedgerReportOnly bool
	// StallAfter is how long a record may be Updating with no TCS request made for it before it counts
	// as stalled (writeback_stalled_records).
	StallAfter time.Duration
}

// Flags defines the worker's flags (with env fallbacks) on fs.
func Flags(fs *flag.FlagSet) *Config {
	c := &Config{Temporal: temporalclient.Flags(fs)}
	d := contract.DefaultRetrySettings()
	set := config.Set{FS: fs}
	set.String(&c.TCSURL, "tcs-url", "TCS_URL", "http://127.0.0.1:8081", "TCS base URL")
	set.Secret(&c.TCSToken, "tcs-token", "TCS_TOKEN", "TCS bearer token")
	set.String(&c.TCSTokenFile, "tcs-token-file", "TCS_TOKEN_FILE", "", "file holding the TCS bearer token (wins over --tcs-token; re-read per request)")
	set.Duration(&c.TCSTimeout, "tcs-timeout", "TCS_TIMEOUT", 10*time.Second, "timeout of one TCS request")
	set.String(&c.MetricsAddr, "metrics-addr", "METRICS_ADDR", "127.0.0.1:9464", "address of /metrics, /healthz, /readyz")
	set.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	set.Float(&c.TCSRate, "tcs-rate", "TCS_RATE", 100, "TCS requests per second, all workers together, every path (first attempts, retries, marks, probes)")
	set.Bool(&c.TCSKeyHonoured, "tcs-idempotency-key-honoured", "TCS_IDEMPOTENCY_KEY_HONOURED", false,
		"TCS honours the Idempotency-Key header (docs/contract.md, TCS API): skip the read before each write (1 request per record instead of 2)")
	set.Duration(&c.OutageWindow, "outage-window", "OUTAGE_WINDOW", 30*time.Second,
		"outage mode: the window in which transient failures from several records and no working answer make an outage")
	set.Int(&c.OutageMinFailures, "outage-min-failures", "OUTAGE_MIN_FAILURES", 10, "outage mode: transient failures in the window that make an outage")
	set.Duration(&c.OutageProbeEvery, "outage-probe-every", "OUTAGE_PROBE_EVERY", 5*time.Second, "outage mode: one request goes out as a probe this often")
	set.Int(&c.MaxConcurrentActivities, "max-concurrent-activities", "MAX_CONCURRENT_ACTIVITIES", 200, "activities run at once by this worker")
	set.Duration(&c.StopTimeout, "stop-timeout", "STOP_TIMEOUT", 30*time.Second, "on SIGTERM, how long running activities may finish")
	set.Duration(&c.Retry.InitialInterval, "retry-initial-interval", "RETRY_INITIAL_INTERVAL", d.InitialInterval, "first retry interval of a TCS update")
	set.Float(&c.Retry.BackoffCoefficient, "retry-backoff-coefficient", "RETRY_BACKOFF_COEFFICIENT", d.BackoffCoefficient, "retry interval growth")
	set.Duration(&c.Retry.MaximumInterval, "retry-max-interval", "RETRY_MAX_INTERVAL", d.MaximumInterval, "longest retry interval")
	set.Duration(&c.Retry.Budget, "retry-budget", "RETRY_BUDGET", d.Budget, "how long transient TCS failures may last before a record is dead-lettered")
	set.Duration(&c.Retry.AttemptTimeout, "attempt-timeout", "ATTEMPT_TIMEOUT", d.AttemptTimeout, "bound of one TCS activity attempt (keep above 2 × tcs-timeout)")
	set.String(&c.DeploymentName, "deployment-name", "TEMPORAL_DEPLOYMENT_NAME", "", "worker deployment name (Worker Versioning; with --build-id)")
	set.String(&c.BuildID, "build-id", "TEMPORAL_BUILD_ID", "", "build ID of this worker (Worker Versioning; with --deployment-name)")
	set.Int(&c.WorkflowCacheSize, "workflow-cache-size", "WORKFLOW_CACHE_SIZE", 500, "workflows cached in memory between tasks (process-wide)")
	set.Duration(&c.Retry.ParkingPeriod, "parking-period", "PARKING_PERIOD", d.ParkingPeriod, "how long a dead letter waits for a retry or abandon signal")
	set.String(&c.LedgerSchedule, "ledger-schedule", "LEDGER_SCHEDULE", "0 2 * * *",
		"cron (UTC) of the daily ledger's schedule, created when missing; off for none")
	set.Duration(&c.StallAfter, "stall-after", "STALL_AFTER", 15*time.Minute,
		"a record Updating this long with no TCS request made for it counts as stalled (writeback_stalled_records)")
	set.Bool(&c.LedgerReportOnly, "ledger-report-only", "LEDGER_REPORT_ONLY", false,
		"the scheduled ledger lists drift and writes nothing (when it creates the schedule)")
	return c
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	r := c.Retry
	switch {
	case r.InitialInterval <= 0 || r.MaximumInterval < r.InitialInterval:
		return fmt.Errorf("retry intervals: initial %s must be > 0 and ≤ max %s", r.InitialInterval, r.MaximumInterval)
	case r.BackoffCoefficient < 1:
		return fmt.Errorf("retry backoff coefficient %v must be ≥ 1", r.BackoffCoefficient)
	case r.Budget <= 0 || r.ParkingPeriod <= 0:
		return fmt.Errorf("retry budget and parking period must be > 0")
	case r.AttemptTimeout < 2*c.TCSTimeout:
		return fmt.Errorf("attempt timeout %s must be at least 2 × the TCS timeout %s (an attempt makes two requests)", r.AttemptTimeout, c.TCSTimeout)
	case (c.DeploymentName == "") != (c.BuildID == ""):
		return fmt.Errorf("worker versioning needs both a deployment name and a build ID")
	case c.TCSRate <= 0:
		return fmt.Errorf("tcs-rate must be > 0")
	}
	return nil
}

// NewGuard builds the TCS guard and, inside it, the worker's only TCS client.
func NewGuard(c *Config, m *telemetry.TCSMetrics, log *slog.Logger) (*guard.Guard, error) {
	tok, err := config.Token(c.TCSToken, c.TCSTokenFile)
	if err != nil {
		return nil, err
	}
	return guard.New(guard.Options{URL: c.TCSURL, Token: tok, Timeout: c.TCSTimeout, UserAgent: c.UserAgent(),
		Rate: c.TCSRate, Identity: c.WorkerIdentity(),
		OutageWindow: c.OutageWindow, OutageMinFailures: c.OutageMinFailures, OutageProbeEvery: c.OutageProbeEvery,
		Observe: m.Observe, OnMode: m.SetMode, OnCap: m.RateLimit.Set, Log: log})
}

// UserAgent is what the worker's TCS requests say they come from: writeback-worker/BUILD under
// Worker Versioning (TCS's logs then tell which build wrote a row), else the program's version.
func (c *Config) UserAgent() string {
	if c.BuildID != "" {
		return "writeback-worker/" + c.BuildID
	}
	v, _ := buildinfo.Get()
	return "writeback-worker/" + v
}

// WorkerIdentity is this worker's identity as its pollers show it (Identity, or pid@host).
func (c *Config) WorkerIdentity() string {
	if c.Identity != "" {
		return c.Identity
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%d@%s@writeback", os.Getpid(), host)
}

// NewTemporalHandler builds the SDK metrics handler on the registry, with our workflow counters at 0.
func NewTemporalHandler(c *Config, reg *telemetry.Registry) (client.MetricsHandler, error) {
	h, err := reg.TemporalHandler()
	if err != nil {
		return nil, err
	}
	var counters []telemetry.WorkflowCounter
	for _, name := range []string{contract.MetricDeadLetters, contract.MetricManualRetries, contract.MetricDeadLettersExpired} {
		counters = append(counters,
			telemetry.WorkflowCounter{Name: name, WorkflowType: contract.PlacementWorkflowType, Kind: string(contract.KindPlacement)},
			telemetry.WorkflowCounter{Name: name, WorkflowType: contract.ScanWorkflowType, Kind: string(contract.KindScan)})
	}
	telemetry.InitWorkflowCounters(h, c.Temporal.Namespace, contract.TaskQueue, counters)
	return h, nil
}

// Dial connects to Temporal, trying again until ctx ends.
func Dial(ctx context.Context, c *Config, log *slog.Logger, h client.MetricsHandler) (client.Client, error) {
	return temporalclient.Dial(ctx, c.Temporal, log, h)
}

// NewWorker builds the worker with both workflows and their activities registered.
func NewWorker(cl client.Client, c *Config, acts *activities.Activities) worker.Worker {
	if c.WorkflowCacheSize > 0 {
		worker.SetStickyWorkflowCacheSize(c.WorkflowCacheSize)
	}
	opts := worker.Options{
		MaxConcurrentActivityExecutionSize: c.MaxConcurrentActivities,
		WorkerStopTimeout:                  c.StopTimeout,
		Identity:                           c.WorkerIdentity(),
		Interceptors:                       []interceptor.WorkerInterceptor{&activities.FirstRunInterceptor{}, &activities.KeepAliveInterceptor{}},
	}
	if c.DeploymentName != "" {
		opts.DeploymentOptions = worker.DeploymentOptions{
			UseVersioning: true,
			Version:       worker.WorkerDeploymentVersion{DeploymentName: c.DeploymentName, BuildID: c.BuildID},
			// Parked dead letters live for weeks: pinning them would keep old builds alive that long.
			// They move to the new build; workflow code stays replay-safe (workflow.GetVersion).
			DefaultVersioningBehavior: workflow.VersioningBehaviorAutoUpgrade,
		}
	}
	w := worker.New(cl, contract.TaskQueue, opts)
	workflows.Register(w, acts)
	workflows.RegisterJobs(w, &operate.Jobs{Temporal: cl})
	workflows.RegisterLedger(w, &operate.Ledger{Temporal: cl, TCS: acts.TCS})
	workflows.RegisterReconcile(w, &operate.Reconciler{Temporal: cl, TCS: acts.TCS})
	workflows.RegisterRollout(w, &activities.Rollouts{Temporal: cl, Namespace: c.Temporal.Namespace})
	return w
}
