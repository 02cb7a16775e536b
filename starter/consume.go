package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.temporal.io/sdk/client"
	"go.uber.org/fx"

	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/config"
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

func runConsume(args []string) int {
	fs := newFlagSet("consume", `Declares the topology, consumes both record queues with manual acks, and starts one
workflow per message (acked only after Temporal accepted the start). Poison messages go to the DLQ
with an x-writeback-error header. While Temporal is unreachable, deliveries are held and retried,
never rejected. Serves /metrics, /healthz and /readyz. Stops gracefully on SIGTERM.`)
	c := &consumeConfig{broker: addBrokerFlags(fs), temporal: temporalclient.Flags(fs)}
	set := config.Set{FS: fs}
	set.String(&c.metricsAddr, "metrics-addr", "METRICS_ADDR", "127.0.0.1:9465", "address of /metrics, /healthz, /readyz")
	set.Int(&c.prefetch, "prefetch", "PREFETCH", 100, "deliveries in flight at most, across both queues")
	set.Duration(&c.drainTimeout, "drain-timeout", "DRAIN_TIMEOUT", 20*time.Second, "on stop, how long deliveries in flight may settle")
	set.Duration(&c.returnEvery, "dlq-return-every", "DLQ_RETURN_EVERY", time.Minute,
		"how often Temporal's health is checked for putting back messages the broker dead-lettered for the delivery limit (at start and after each Temporal outage; 0: never)")
	set.String(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	log := logging.New(os.Stderr, logging.ParseLevel(c.logLevel))
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

// consumeLifecycle: the HTTP server starts at once; RabbitMQ and Temporal are dialled in the
// background, each waiting for its server; a stop cancels the consumers and lets in-flight
// deliveries settle before the connections close.
func consumeLifecycle(lc fx.Lifecycle, sd fx.Shutdowner, c *consumeConfig, log *slog.Logger, reg *telemetry.Registry,
	srv *telemetry.Server, health *telemetry.Health, m *intake.Metrics) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var (
		conn *broker.Conn
		pub  *broker.Publisher
		tc   client.Client
	)
	fail := func(msg string, err error) {
		log.Error(msg, "error", err)
		_ = sd.Shutdown(fx.ExitCode(1))
	}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				if err := srv.Serve(); err != nil {
					fail("metrics server failed", err)
				}
			}()
			go func() {
				defer close(done)
				var err error
				c.broker.conn.Name = "writeback-starter"
				if conn, err = broker.Dial(c.broker.conn, log, 0, ctx.Done()); err != nil {
					if ctx.Err() == nil {
						fail("cannot connect to RabbitMQ", err)
					}
					return
				}
				reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
					Name: "writeback_rabbitmq_up", Help: "1 while the RabbitMQ connection is open.",
				}, func() float64 { return b2f(conn.Up()) }))
				if pub, err = broker.NewPublisher(conn); err != nil {
					fail("cannot open a publisher channel", err)
					return
				}
				if tc, err = temporalclient.Dial(ctx, c.temporal, log, nil); err != nil {
					if ctx.Err() == nil {
						fail("cannot connect to Temporal", err)
					}
					return
				}
				m.TemporalUp.Set(1)
				go watchTemporal(ctx, tc, m)
				if c.returnEvery > 0 {
					r := &ops.Returner{Conn: conn, Pub: pub, Topology: c.broker.topology, Log: log, Every: c.returnEvery,
						Healthy: func(ctx context.Context) bool { return temporalHealthy(ctx, tc) }, Returned: m.Returned.Inc}
					go r.Run(ctx)
				}
				consumerConn := c.broker.conn
				consumerConn.Name = "writeback-starter-consumer"
				consumer := &intake.Consumer{Conn: conn, Dial: func() (*amqp.Connection, error) { return broker.DialPlain(consumerConn) },
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
					fail("consumer stopped", err)
				}
			}()
			return nil
		},
		OnStop: func(stopCtx context.Context) error {
			health.SetReady(false)
			cancel()
			select {
			case <-done:
			case <-stopCtx.Done():
			}
			if pub != nil {
				_ = pub.Close()
			}
			if conn != nil {
				_ = conn.Close()
			}
			if tc != nil {
				tc.Close()
			}
			return srv.Shutdown(stopCtx)
		},
	})
}

func watchTemporal(ctx context.Context, tc client.Client, m *intake.Metrics) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.TemporalUp.Set(b2f(temporalHealthy(ctx, tc)))
		}
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
