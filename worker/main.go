// Command worker hosts the writeback workflows and their TCS activities (docs/contract.md, Workflows).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/fx"

	"github.com/tis-writeback/writeback/activities"
	"github.com/tis-writeback/writeback/internal/buildinfo"
	"github.com/tis-writeback/writeback/internal/config"
	"github.com/tis-writeback/writeback/internal/daemon"
	"github.com/tis-writeback/writeback/internal/logging"
	"github.com/tis-writeback/writeback/internal/telemetry"
	"github.com/tis-writeback/writeback/internal/workerapp"
	"github.com/tis-writeback/writeback/tcs/guard"
)

func main() {
	buildinfo.HandleVersionFlag("writeback-worker")
	fs := flag.NewFlagSet("worker", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./worker [flags]\n\nRuns the writeback workflows and TCS activities on task queue \"writeback\".\n\n")
		fs.PrintDefaults()
	}
	cfg := workerapp.Flags(fs)
	_ = fs.Parse(os.Args[1:]) // ExitOnError: a malformed flag has printed why and exited
	if err := config.ApplyEnv(fs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	level, err := logging.ParseLevel(cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := logging.New(os.Stderr, level)
	if err := cfg.Validate(); err != nil {
		log.Error("invalid configuration", "error", err)
		os.Exit(2)
	}

	app := fx.New(
		fx.Supply(cfg, log),
		fx.WithLogger(logging.FxLogger(log)),
		fx.Provide(
			telemetry.NewRegistry,
			func(r *telemetry.Registry) *telemetry.TCSMetrics { return telemetry.NewTCSMetrics(r) },
			workerapp.NewTemporalHandler,
			workerapp.NewGuard,
			func(g *guard.Guard, cfg *workerapp.Config, log *slog.Logger) *activities.Activities {
				a := activities.New(g.TCS(), log, cfg.Retry)
				a.KeyHonoured = cfg.TCSKeyHonoured
				return a
			},
			func(r *telemetry.Registry, cfg *workerapp.Config, log *slog.Logger) *workerapp.Watch {
				return workerapp.NewWatch(r, cfg, log)
			},
			func() *telemetry.Health { return &telemetry.Health{} },
			func(cfg *workerapp.Config, r *telemetry.Registry, h *telemetry.Health) (*telemetry.Server, error) {
				return telemetry.NewServer(cfg.MetricsAddr, r, h)
			},
		),
		fx.Invoke(run),
		// fx's default stop timeout (15 s) would cut a graceful worker stop short.
		fx.StopTimeout(cfg.StopTimeout+15*time.Second),
	)
	app.Run() // until SIGINT/SIGTERM, then OnStop hooks in reverse order
	if err := app.Err(); err != nil {
		os.Exit(1)
	}
}

// run wires the lifecycle on the daemon shell: Temporal is dialled in the background (a worker
// started before Temporal waits for it); a stop ends the worker, letting running activities finish
// within the stop timeout.
func run(lc fx.Lifecycle, sd fx.Shutdowner, cfg *workerapp.Config, log *slog.Logger, reg *telemetry.Registry,
	h client.MetricsHandler, acts *activities.Activities, srv *telemetry.Server, health *telemetry.Health, gov *guard.Guard,
	watch *workerapp.Watch) {
	shell := &daemon.Shell{Log: log, Server: srv, Health: health, Fatal: func() { _ = sd.Shutdown(fx.ExitCode(1)) },
		Body: func(ctx context.Context, s *daemon.Shell) error {
			c, err := workerapp.Dial(ctx, cfg, log, h)
			if err != nil {
				return fmt.Errorf("cannot connect to Temporal: %w", err)
			}
			s.Defer(func(context.Context) { c.Close() })
			health.Check = func(ctx context.Context) error { _, err := c.CheckHealth(ctx, nil); return err }
			gov.Prime(ctx, c)
			w := workerapp.NewWorker(c, cfg, acts)
			if err := w.Start(); err != nil {
				return fmt.Errorf("worker cannot start: %w", err)
			}
			// The guard outlives the worker's drain: its running activities still take their share.
			govCtx, stopGov := context.WithCancel(context.Background())
			s.Defer(func(ctx context.Context) {
				log.Info("stopping worker; running activities may finish", "timeout", cfg.StopTimeout)
				w.Stop()
				stopGov()
				gov.Leave(ctx)             // its share of the TCS cap goes to the others at once
				log.Info("worker stopped") // what a deployment check reads: the stop ran to its end, no SIGKILL
			})
			go gov.Run(govCtx, c)
			go watch.Run(govCtx, c)
			if err := workerapp.EnsureLedgerSchedule(ctx, c, cfg.LedgerSchedule, cfg.LedgerReportOnly, log); err != nil {
				log.Warn("the daily ledger has no schedule; the next worker to start tries again", "error", err.Error())
			}
			health.SetReady(true)
			log.Info("worker started", "taskQueue", "writeback", "temporal", cfg.Temporal.Address,
				"namespace", cfg.Temporal.Namespace, "tcs", cfg.TCSURL, "metrics", srv.Addr(), "tcsRate", cfg.TCSRate)
			return nil
		}}
	shell.Defer(func(ctx context.Context) { _ = reg.Shutdown(ctx) }) // last, after the worker stopped
	lc.Append(fx.Hook{OnStart: shell.Start, OnStop: shell.Stop})
}
