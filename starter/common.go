package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/config"
	"github.com/tis-writeback/writeback/internal/logging"
	"github.com/tis-writeback/writeback/internal/temporalclient"
)

// brokerFlags are the RabbitMQ connection and topology flags.
type brokerFlags struct {
	conn     broker.ConnConfig
	topology broker.Topology
}

func addBrokerFlags(fs *flag.FlagSet) *brokerFlags {
	b := &brokerFlags{topology: broker.DefaultTopology()}
	set := config.Set{FS: fs}
	set.String(&b.conn.URL, "amqp-url", "AMQP_URL", "amqp://guest:guest@localhost:5672/", "RabbitMQ URL (amqps:// for TLS); the nodes of a cluster as several URLs separated by commas (failed over in turn)")
	set.String(&b.conn.CAFile, "amqp-ca", "AMQP_CA_FILE", "", "CA bundle (PEM) to verify RabbitMQ")
	set.String(&b.conn.CertFile, "amqp-cert", "AMQP_CERT_FILE", "", "client certificate (PEM) for RabbitMQ")
	set.String(&b.conn.KeyFile, "amqp-key", "AMQP_KEY_FILE", "", "client key (PEM) for RabbitMQ")
	set.Duration(&b.conn.RetryInterval, "amqp-reconnect-interval", "AMQP_RECONNECT_INTERVAL", 2*time.Second, "wait between reconnection attempts")
	t := &b.topology
	set.String(&t.Exchange, "exchange", "WRITEBACK_EXCHANGE", t.Exchange, "topic exchange messages are published to")
	set.String(&t.PlacementQueue, "placement-queue", "WRITEBACK_PLACEMENT_QUEUE", t.PlacementQueue, "queue of placement.exported")
	set.String(&t.ScanQueue, "scan-queue", "WRITEBACK_SCAN_QUEUE", t.ScanQueue, "queue of scan.completed")
	set.String(&t.DLX, "dlx", "WRITEBACK_DLX", t.DLX, "dead-letter exchange (fanout)")
	set.String(&t.DLQ, "dlq", "WRITEBACK_DLQ", t.DLQ, "dead-letter queue")
	set.Int(&t.DeliveryLimit, "delivery-limit", "WRITEBACK_DELIVERY_LIMIT", t.DeliveryLimit, "x-delivery-limit of the record queues")
	return b
}

// openBroker connects to RabbitMQ (three tries) with a confirming publisher; declare also declares
// the topology. On failure it has printed why and returns ok=false.
func openBroker(ctx context.Context, bf *brokerFlags, declare bool) (*broker.Conn, *broker.Publisher, bool) {
	log := logging.New(stderr, slog.LevelWarn)
	conn, pub, err := broker.Connect(bf.conn, log, 3, ctx.Done())
	if err == nil && declare {
		if err = bf.topology.Declare(conn, log); err != nil {
			pub.Close()
			conn.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, false
	}
	return conn, pub, true
}

// dialTemporal connects for a short operator command (15 s at most); on failure it has printed why.
func dialTemporal(ctx context.Context, tc *temporalclient.Config) (client.Client, bool) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := temporalclient.Dial(dctx, tc, logging.New(stderr, slog.LevelError), nil)
	if err != nil {
		fmt.Fprintln(stderr, "cannot reach Temporal:", err)
		return nil, false
	}
	return c, true
}

// withTemporal runs f with a context that ends on Ctrl-C and a Temporal client (exit 1 when
// Temporal cannot be reached).
func withTemporal(tc *temporalclient.Config, f func(ctx context.Context, c client.Client) int) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, ok := dialTemporal(ctx, tc)
	if !ok {
		return 1
	}
	defer c.Close()
	return f(ctx, c)
}

// printJSON writes v as one line of JSON on standard output: the --json form of a command's table or
// report, for scripts. It returns code, the command's exit code, unless v cannot be encoded.
func printJSON(v any, code int) int {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, string(b))
	return code
}
