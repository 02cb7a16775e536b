package integration_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/starter/intake"
	"github.com/tis-writeback/writeback/starter/ops"
)

// setConsumerTimeout lowers consumer_timeout on the tests' own RabbitMQ node (never the machine's)
// for this test and puts back what it was.
func setConsumerTimeout(t *testing.T, ms int) {
	before := strings.TrimSpace(testenv.RabbitCtl(t, "eval", "application:get_env(rabbit, consumer_timeout)."))
	testenv.RabbitCtl(t, "eval", fmt.Sprintf("application:set_env(rabbit, consumer_timeout, %d).", ms))
	t.Cleanup(func() {
		if v, ok := strings.CutPrefix(before, "{ok,"); ok {
			testenv.RabbitCtl(t, "eval", fmt.Sprintf("application:set_env(rabbit, consumer_timeout, %s).", strings.TrimSuffix(v, "}")))
		} else {
			testenv.RabbitCtl(t, "eval", "application:unset_env(rabbit, consumer_timeout).")
		}
	})
}

// queueInfo is a queue's ready messages and consumers.
func queueInfo(t *testing.T, b *testenv.Broker, queue string) (messages, consumers int, ok bool) {
	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, 0, false
	}
	return q.Messages, q.Consumers, true
}

// A delivery held through a long Temporal outage trips consumer_timeout: the broker closes the
// consumer's channel (406) while the connection stays up. The held deliveries must not be acked
// on a reopened channel (wrong message, or another 406 and another count against the delivery
// limit); they are redelivered and started exactly once, and nothing reaches the DLQ.
func TestConsumerTimeoutClosesTheChannelNothingIsLostOrDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	setConsumerTimeout(t, 5000)
	b := testenv.StartBroker(t, 3)
	tp := testenv.StartTemporalProcess(t)
	tc := tp.Client(t)
	c := startConsumer(t, b, tc, 10)
	b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(1, "FIRST.DAT"))
	waitCount(t, tc, "", 1, 30*time.Second)

	tp.Stop(t)
	for i := int64(1); i <= 8; i++ {
		b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(i, "HELD.DAT"))
	}
	// Held until the broker's consumer timeout closes the channel, at least once.
	require.Eventually(t, func() bool { return len(c.logs.Lines("channel closed by the broker")) > 0 }, 3*time.Minute, time.Second,
		"the consumer timeout never closed the channel; log:\n%s", strings.Join(c.logs.Lines(""), "\n"))
	require.LessOrEqual(t, testutilGauge(c.metrics.InFlight), 10.0, "never more deliveries in flight than the prefetch")
	tp.Start(t)
	waitCount(t, tc, "", 9, 2*time.Minute)
	require.Eventually(t, func() bool {
		n, _, _ := queueInfo(t, b, b.Topology.PlacementQueue)
		return n == 0 && testutilGauge(c.metrics.InFlight) == 0
	}, time.Minute, 200*time.Millisecond)
	require.Equal(t, 0, b.Depth(t, b.Topology.DLQ), "nothing dead-lettered for an infrastructure fault; log:\n%s",
		strings.Join(c.logs.Lines(""), "\n"))
	require.Empty(t, c.logs.Lines("unknown delivery tag"), "an ack went to a channel the delivery did not come from")
	require.NoError(t, readyErr(c))
}

// The broker cancels the consumer when its queue is deleted; the starter declares the queue again
// and consumes again, rather than staying green while consuming nothing.
func TestDeletedQueueIsConsumedAgain(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	c := startConsumer(t, b, tm.Client, 10)
	b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(1, "BEFORE.DAT"))
	waitCount(t, tm.Client, "", 1, 20*time.Second)

	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDelete(b.Topology.PlacementQueue, false, false, false)
	require.NoError(t, err)
	_ = ch.Close()
	require.Eventually(t, func() bool {
		_, consumers, ok := queueInfo(t, b, b.Topology.PlacementQueue)
		return ok && consumers == 1
	}, 30*time.Second, 200*time.Millisecond, "log:\n%s", strings.Join(c.logs.Lines(""), "\n"))
	b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(2, "AFTER.DAT"))
	waitCount(t, tm.Client, "", 2, 20*time.Second)
	require.NoError(t, readyErr(c))
	require.Equal(t, 1.0, testutilGauge(c.metrics.ConsumerUp.WithLabelValues(b.Topology.PlacementQueue)))
}

// While a record queue cannot be consumed (here another connection holds it exclusively), the
// starter is not ready and the metric names the queue; once it can, it consumes again.
func TestQueueThatCannotBeConsumedMakesTheStarterNotReady(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	c := startConsumer(t, b, tm.Client, 10)
	require.Eventually(t, func() bool { return readyErr(c) == nil }, 20*time.Second, 100*time.Millisecond)

	// Another client deletes the queue and declares it exclusive to its own connection.
	other, err := amqp.Dial(testenv.AMQPURL(t))
	require.NoError(t, err)
	och, err := other.Channel()
	require.NoError(t, err)
	_, err = och.QueueDelete(b.Topology.PlacementQueue, false, false, false)
	require.NoError(t, err)
	_, err = och.QueueDeclare(b.Topology.PlacementQueue, false, true, true, false, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		err := readyErr(c)
		return err != nil && strings.Contains(err.Error(), b.Topology.PlacementQueue) &&
			testutilGauge(c.metrics.ConsumerUp.WithLabelValues(b.Topology.PlacementQueue)) == 0
	}, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, 1.0, testutilGauge(c.metrics.ConsumerUp.WithLabelValues(b.Topology.ScanQueue)), "the other queue is still consumed")

	_ = other.Close() // the exclusive queue goes with its connection
	require.Eventually(t, func() bool { return readyErr(c) == nil }, 30*time.Second, 200*time.Millisecond,
		"log:\n%s", strings.Join(c.logs.Lines(""), "\n"))
	b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(3, "BACK.DAT"))
	waitCount(t, tm.Client, "", 1, 20*time.Second)
}

func readyErr(c *consumer) error { return c.consumer.Ready() }

// A message the broker dead-lettered for the delivery limit (as after repeated consumer timeouts
// in a long Temporal outage) was never judged bad: once Temporal is healthy the starter puts it
// back by itself, and it is started. A poison message in the same DLQ stays there.
func TestDeliveryLimitDeadLettersComeBackByThemselves(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 1)
	// Make the broker dead-letter a valid message for the delivery limit: take it back twice.
	raw, err := amqp.Dial(testenv.AMQPURL(t))
	require.NoError(t, err)
	defer raw.Close()
	rch, err := raw.Channel()
	require.NoError(t, err)
	overTheLimit := func(id int64, file string, dlqDepth int) { // published, then taken back until the broker dead-letters it
		b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(id, file))
		require.Eventually(t, func() bool {
			d, ok, err := rch.Get(b.Topology.PlacementQueue, false)
			require.NoError(t, err)
			if ok {
				require.NoError(t, d.Nack(false, true))
			}
			return b.Depth(t, b.Topology.DLQ) == dlqDepth
		}, 20*time.Second, 50*time.Millisecond)
	}
	overTheLimit(5, "LIMIT.DAT", 1)
	c := startConsumer(t, b, tm.Client, 10)
	b.Publish(t, contract.RoutingKeyScanCompleted, []byte(`{"scanId":"nope"}`)) // poison: goes to the DLQ and stays
	require.Eventually(t, func() bool { return b.Depth(t, b.Topology.DLQ) == 2 }, 20*time.Second, 100*time.Millisecond)

	r := &ops.Returner{Conn: b.Conn, Pub: b.Pub, Topology: b.Topology, Log: testLogger(), Every: 500 * time.Millisecond,
		Healthy:  func(ctx context.Context) bool { _, err := tm.Client.CheckHealth(ctx, nil); return err == nil },
		Returned: c.metrics.Returned.Inc, Poison: c.metrics.DLQPoison.Set}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	waitCount(t, tm.Client, fmt.Sprintf(`WorkflowId=%q`, contract.PlacementWorkflowID(5, "LIMIT.DAT")), 1, 30*time.Second)
	time.Sleep(2 * time.Second) // several passes
	require.Equal(t, 1, b.Depth(t, b.Topology.DLQ), "the poison message stays for an operator")
	require.Equal(t, 1.0, testutilGauge(c.metrics.DLQPoison), "the DLQ's poison is counted (the rest would alert)")

	// Temporal stayed healthy all along: a delivery-limit dead letter made now comes back as well,
	// within a few passes (a wrong namespace or an unregistered search attribute holds deliveries
	// until consumer_timeout counts them out, with the health check green).
	c.stop()
	overTheLimit(6, "LATER.DAT", 2)
	require.Eventually(t, func() bool { return b.Depth(t, b.Topology.PlacementQueue) == 1 }, 5*time.Second, 100*time.Millisecond,
		"back in its queue with Temporal healthy all along")
	// The pass may still hold the poison message (taken, to be put back at the DLQ's tail) when the
	// other is already back in its queue: the DLQ holds it again once the pass ends.
	require.Eventually(t, func() bool {
		return b.Depth(t, b.Topology.DLQ) == 1 && testutilCounter(c.metrics.Returned) == 2.0
	}, 5*time.Second, 100*time.Millisecond, "the poison message stays for an operator; two came back")
	d := b.Drain(t, b.Topology.DLQ)[0]
	require.Contains(t, d.Headers[intake.HeaderError], "UUID")
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
