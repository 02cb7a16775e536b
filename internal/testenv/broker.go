package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/devserver"
	"github.com/tis-writeback/writeback/internal/proc"
	"github.com/tis-writeback/writeback/internal/temporalclient"
)

// Broker is the real RabbitMQ, with a topology of this test's own.
type Broker struct {
	URL      string // AMQP_URL
	Topology broker.Topology
	Conn     *broker.Conn
	Pub      *broker.Publisher
}

// StartBroker connects to RabbitMQ and declares a fresh topology under a unique prefix,
// deleted when the test ends.
func StartBroker(t testing.TB, deliveryLimit int) *Broker {
	t.Helper()
	topo := broker.DefaultTopology().WithPrefix(fmt.Sprintf("wbtest-%d-%d", time.Now().UnixNano()%1e9, rand.IntN(1e6)))
	if deliveryLimit > 0 {
		topo.DeliveryLimit = deliveryLimit
	}
	url := AMQPURL(t)
	conn, err := broker.Dial(broker.ConnConfig{URL: url, RetryInterval: 500 * time.Millisecond, Name: "writeback-test"},
		slog.New(slog.NewTextHandler(io.Discard, nil)), 3, nil)
	if err != nil {
		t.Fatalf("RabbitMQ at %s: %v", redactURL(url), err)
	}
	pub, err := broker.NewPublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Declare(conn, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch, err := conn.Channel()
		if err == nil {
			for _, q := range []string{topo.PlacementQueue, topo.ScanQueue, topo.DLQ} {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
			_ = ch.ExchangeDelete(topo.Exchange, false, false)
			_ = ch.ExchangeDelete(topo.DLX, false, false)
			_ = ch.Close()
		}
		_ = pub.Close()
		_ = conn.Close()
	})
	return &Broker{URL: url, Topology: topo, Conn: conn, Pub: pub}
}

// Publish publishes a body with a routing key, waiting for the confirm.
func (b *Broker) Publish(t testing.TB, key string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Pub.Publish(ctx, b.Topology.Exchange, key, amqp.Publishing{ContentType: "application/json", Body: body}); err != nil {
		t.Fatal(err)
	}
}

// Depth is the number of ready messages in a queue.
func (b *Broker) Depth(t testing.TB, queue string) int {
	t.Helper()
	ch, err := b.Conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// Drain takes every message from a queue (acking them) and returns them.
func (b *Broker) Drain(t testing.TB, queue string) []amqp.Delivery {
	t.Helper()
	ch, err := b.Conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
		_ = d.Ack(false)
	}
}

// Env is the environment of a starter process for this broker.
func (b *Broker) Env() []string {
	t := b.Topology
	return []string{"AMQP_URL=" + b.URL, "WRITEBACK_EXCHANGE=" + t.Exchange, "WRITEBACK_PLACEMENT_QUEUE=" + t.PlacementQueue,
		"WRITEBACK_SCAN_QUEUE=" + t.ScanQueue, "WRITEBACK_DLX=" + t.DLX, "WRITEBACK_DLQ=" + t.DLQ,
		"WRITEBACK_DELIVERY_LIMIT=" + strconv.Itoa(t.DeliveryLimit)}
}

// TemporalProcess is a dev server that a test can stop and start again on the same port and
// database file, as when Temporal goes down and comes back.
type TemporalProcess struct {
	Address string
	cli     string
	proc    *proc.Process
}

// StartTemporalProcess starts a dev server with a database file.
func StartTemporalProcess(t testing.TB) *TemporalProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	p := &TemporalProcess{cli: TemporalCLI(t), Address: fmt.Sprintf("127.0.0.1:%d", port)}
	p.proc = &proc.Process{Name: "temporal", Bin: p.cli, Args: devserver.ProcessArgs(port, 0, filepath.Join(dir, "temporal.db")), LogDir: dir}
	p.Start(t)
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Start starts the server and waits until it answers.
func (p *TemporalProcess) Start(t testing.TB) {
	t.Helper()
	if err := p.proc.Start(); err != nil {
		t.Fatal(err)
	}
	if err := temporalclient.WaitHealthy(context.Background(), p.Address, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// Stop stops the server (its data stays in the database file).
func (p *TemporalProcess) Stop(testing.TB) { p.proc.Stop() }

// Client dials the server.
func (p *TemporalProcess) Client(t testing.TB) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: p.Address, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Temporal returns the server as a *Temporal, for StartWorker and the CLI helper.
func (p *TemporalProcess) Temporal(t testing.TB) *Temporal {
	return &Temporal{Address: p.Address, Client: p.Client(t), cli: p.cli}
}
