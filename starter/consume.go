package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/fx"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/config"
	"github.com/tis-writeback/writeback/internal/daemon"
	"github.com/tis-writeback/writeback/internal/logging"
	"github.com/tis-writeback/writeback/internal/telemetry"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/starter/intake"
	"github.com/tis-writeback/writeback/starter/ops"
)

type consumeConfig struct {
	broker       *brokerFlags
	temporal     *temporalclient.Config
	metricsAddr  string
	prefetch     int
	drainTimeout time.Duration
	returnEvery  time.Duration
	logLevel     string
}

func consumeCmd() *cobra.Command {
	return leaf(&cobra.Command{Use: "consume", Short: "consume the record queues and start one workflow per message", Args: cobra.NoArgs,
		Long: `Declares the topology, consumes both record queues with manual acks, and starts one
workflow per message (acked only after Temporal accepted the start). Poison messages go to the DLQ
with an x-writeback-error header. While Temporal is unreachable, deliveries are held and retried,
never rejected. Serves /metrics, /healthz and /readyz. Stops gracefully on SIGTERM.`},
		func(fs *flag.FlagSet) body {
			c := &consumeConfig{broker: addBrokerFlags(fs), temporal: temporalclient.Flags(fs)}
			set := config.Set{FS: fs}
			set.String(&c.metricsAddr, "metrics-addr", "METRICS_ADDR", "127.0.0.1:9465", "address of /metrics, /healthz, /readyz")
			set.Int(&c.prefetch, "prefetch", "PREFETCH", 100, "deliveries in flight at most, across both queues")
			set.Duration(&c.drainTimeout, "drain-timeout", "DRAIN_TIMEOUT", 20*time.Second, "on stop, how long deliveries in flight may settle")
			set.Duration(&c.returnEvery, "dlq-return-every", "DLQ_RETURN_EVERY", time.Minute,
				"how often the DLQ is looked at for messages the broker dead-lettered for the delivery limit, put back in their queue while Temporal is healthy (0: never)")
			set.String(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
			return func([]string) int {
				level, err := logging.ParseLevel(c.logLevel)
				if err != nil {
					fmt.Fprintln(stderr, err)
					return 2
				}
				log := logging.New(stderr, level)
				if c.prefetch < 2 {
					log.Error("prefetch must be at least 2 (one per queue)")
					return 2
				}
				app := fx.New(
					fx.Supply(c, log),
					fx.WithLogger(logging.FxLogger(log)),
					fx.Provide(
						telemetry.NewRegistry,
						func() *telemetry.Health { return &telemetry.Health{} },
						func(c *consumeConfig, r *telemetry.Registry, h *telemetry.Health) (*telemetry.Server, error) {
							return telemetry.NewServer(c.metricsAddr, r, h)
						},
						func(c *consumeConfig, r *telemetry.Registry) *intake.Metrics {
							return intake.NewMetrics(r, []string{c.broker.topology.PlacementQueue, c.broker.topology.ScanQueue}, c.broker.topology.DLQ)
						},
					),
					fx.Invoke(consumeLifecycle),
					fx.StopTimeout(c.drainTimeout+15*time.Second),
				)
				app.Run()
				return 0
			}
		})
}

// consumeLifecycle wires the consumer on the daemon shell: RabbitMQ and Temporal are dialled in
// the background, each waiting for its server; a stop cancels the consumers and lets in-flight
// deliveries settle before the connections close.
func consumeLifecycle(lc fx.Lifecycle, sd fx.Shutdowner, c *consumeConfig, log *slog.Logger, reg *telemetry.Registry,
	srv *telemetry.Server, health *telemetry.Health, m *intake.Metrics) {
	shell := &daemon.Shell{Log: log, Server: srv, Health: health, Fatal: func() { _ = sd.Shutdown(fx.ExitCode(1)) },
		Body: func(ctx context.Context, s *daemon.Shell) error { return consume(ctx, s, c, log, reg, health, m) }}
	lc.Append(fx.Hook{OnStart: shell.Start, OnStop: shell.Stop})
}

func consume(ctx context.Context, s *daemon.Shell, c *consumeConfig, log *slog.Logger, reg *telemetry.Registry,
	health *telemetry.Health, m *intake.Metrics) error {
	c.broker.conn.Name = "writeback-starter"
	conn, err := broker.Dial(c.broker.conn, log, 0, ctx.Done())
	if err != nil {
		return fmt.Errorf("cannot connect to RabbitMQ: %w", err)
	}
	s.Defer(func(context.Context) { _ = conn.Close() })
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "writeback_rabbitmq_up", Help: "1 while the RabbitMQ connection is open.",
	}, func() float64 { return b2f(conn.Up()) }))
	pub, err := broker.NewPublisher(conn)
	if err != nil {
		return fmt.Errorf("cannot open a publisher channel: %w", err)
	}
	s.Defer(func(context.Context) { _ = pub.Close() })
	tc, err := temporalclient.Dial(ctx, c.temporal, log, nil)
	if err != nil {
		return fmt.Errorf("cannot connect to Temporal: %w", err)
	}
	s.Defer(func(context.Context) { tc.Close() })
	m.TemporalUp.Set(1)
	go watchTemporal(ctx, tc, m)
	if c.returnEvery > 0 {
		r := &ops.Returner{Conn: conn, Pub: pub, Topology: c.broker.topology, Log: log, Every: c.returnEvery,
			Healthy: func(ctx context.Context) bool { return temporalHealthy(ctx, tc) }, Returned: m.Returned.Inc, Poison: m.DLQPoison.Set}
		go r.Run(ctx)
	}
	consumerConn := c.broker.conn
	consumerConn.Name = "writeback-starter-consumer"
	consumer := &intake.Consumer{Conn: conn, Dial: func() (*broker.PlainConn, error) { return broker.DialPlain(consumerConn) },
		Topology: c.broker.topology, Publisher: pub,
		Starter: intake.TemporalStarter{Client: tc}, Log: log, Metrics: m, Prefetch: c.prefetch,
		DrainTimeout: c.drainTimeout}
	health.Check = func(ctx context.Context) error {
		if !conn.Up() {
			return errors.New("RabbitMQ connection down")
		}
		// Never a green starter that consumes nothing.
		return consumer.Ready()
	}
	health.SetReady(true)
	if err := consumer.Run(ctx); err != nil {
		return fmt.Errorf("consumer stopped: %w", err)
	}
	return nil
}

func watchTemporal(ctx context.Context, tc client.Client, m *intake.Metrics) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			healthy := temporalHealthy(ctx, tc)
			m.TemporalUp.Set(b2f(healthy))
			if healthy && n%6 == 0 {
				countUpdating(ctx, tc, m)
			}
		}
	}
}

// countUpdating sets writeback_records_updating from visibility (left as it was if Temporal does
// not answer).
func countUpdating(ctx context.Context, tc client.Client, m *intake.Metrics) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := tc.CountWorkflow(cctx, &workflowservice.CountWorkflowExecutionsRequest{
		Query: fmt.Sprintf(`%s=%q AND ExecutionStatus="Running"`, contract.StateKey.GetName(), contract.StateUpdating)})
	if err == nil {
		m.RecordsUpdating.Set(float64(resp.GetCount()))
	}
}

func temporalHealthy(ctx context.Context, tc client.Client) bool {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := tc.CheckHealth(cctx, nil)
	return err == nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
