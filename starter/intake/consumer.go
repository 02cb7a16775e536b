package intake

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tis-writeback/writeback/messages"
	"github.com/tis-writeback/writeback/starter/broker"
)

// Headers the starter sets on a message it dead-letters.
const (
	HeaderError      = "x-writeback-error"
	HeaderRoutingKey = "x-writeback-routing-key"
	HeaderQueue      = "x-writeback-queue"
	HeaderPoisonedAt = "x-writeback-poisoned-at"
)

// Consumer consumes the record queues.
type Consumer struct {
	Conn      *broker.Conn
	Topology  broker.Topology
	Publisher *broker.Publisher // for poison messages, with confirms
	Starter   Starter
	Log       *slog.Logger
	Metrics   *Metrics
	// Prefetch bounds the deliveries in flight across both queues (split between them: quorum
	// queues do not support a channel-wide prefetch).
	Prefetch int
	// RetryMin and RetryMax bound the backoff of a held start.
	RetryMin, RetryMax time.Duration
	// DrainTimeout is how long a stop waits for in-flight deliveries.
	DrainTimeout time.Duration
	// DepthEvery is how often the queue depths are polled for writeback_queue_messages (0: 15 s).
	DepthEvery time.Duration
}

// Run consumes until ctx ends, then stops taking deliveries and waits for the ones in flight.
func (c *Consumer) Run(ctx context.Context) error {
	if c.RetryMin <= 0 {
		c.RetryMin = 200 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 20 * time.Second
	}
	ch, err := c.Conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	sources := c.Topology.Sources()
	if err := ch.Qos(max(1, c.Prefetch/len(sources)), 0, false); err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	if err := c.Topology.Declare(ch); err != nil {
		return err
	}

	// work ends when the drain timeout passes after a stop: held deliveries are then left
	// unacked and the broker requeues them when the channel closes.
	work, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var inflight sync.WaitGroup
	var loops sync.WaitGroup
	for i, src := range sources {
		tag := fmt.Sprintf("writeback-starter-%d-%d", time.Now().UnixNano(), i)
		deliveries, err := ch.Consume(src.Queue, tag, false, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("consume %s: %w", src.Queue, err)
		}
		loops.Add(1)
		go func(src broker.Source, tag string) {
			defer loops.Done()
			for {
				select {
				case <-ctx.Done():
					_ = ch.Cancel(tag, false)
					// Deliveries already pushed to us stay unacked and are requeued on close.
					return
				case d, ok := <-deliveries:
					if !ok {
						return
					}
					epoch := c.Conn.Epoch()
					inflight.Add(1)
					c.Metrics.InFlight.Inc()
					go func() {
						defer inflight.Done()
						defer c.Metrics.InFlight.Dec()
						c.handle(work, src, d, epoch)
					}()
				}
			}
		}(src, tag)
	}
	go c.pollDepths(ctx)
	c.Log.Info("consuming", "queues", []string{sources[0].Queue, sources[1].Queue}, "prefetch", c.Prefetch)
	<-ctx.Done()
	loops.Wait()

	drained := make(chan struct{})
	go func() { inflight.Wait(); close(drained) }()
	select {
	case <-drained:
		c.Log.Info("consumer stopped; every delivery in flight was settled")
	case <-time.After(c.DrainTimeout):
		c.Log.Warn("consumer stopped with deliveries still held; the broker requeues them", "timeout", c.DrainTimeout)
		stopWork()
		<-drained
	}
	return nil
}

func (c *Consumer) handle(ctx context.Context, src broker.Source, d amqp.Delivery, epoch uint64) {
	received := time.Now()
	rec, err := Decode(src.Kind, d.Body)
	if err != nil {
		c.poison(ctx, src, d, epoch, err.(*messages.Invalid).Reason)
		return
	}
	wait := c.RetryMin
	held := false
	for attempt := 1; ; attempt++ {
		started, err := c.Starter.Start(ctx, rec)
		if err == nil {
			c.Metrics.TemporalUp.Set(1)
			if held {
				c.Metrics.Held.Dec()
				c.Log.Info("start accepted after Temporal came back", "workflowId", rec.WorkflowID, "attempts", attempt)
			}
			outcome := OutcomeStarted
			if !started {
				outcome = OutcomeDuplicate
			}
			if c.ack(d, epoch) {
				c.Metrics.Messages.WithLabelValues(src.Queue, outcome).Inc()
				c.Metrics.StartDuration.Observe(time.Since(received).Seconds())
			}
			return
		}
		// Temporal did not accept the start: an infrastructure fault, never the message's.
		// Hold the delivery (no nack: that would count against the delivery limit) and retry.
		c.Metrics.TemporalUp.Set(0)
		c.Metrics.StartRetries.WithLabelValues(src.Queue).Inc()
		if !held {
			held = true
			c.Metrics.Held.Inc()
		}
		if attempt == 1 || attempt%20 == 0 {
			c.Log.Warn("Temporal did not accept a start; holding the delivery and retrying",
				"workflowId", rec.WorkflowID, "attempt", attempt, "error", err, "wait", wait)
		}
		select {
		case <-ctx.Done():
			c.Metrics.Held.Dec()
			return // left unacked: requeued by the broker when the channel closes
		case <-time.After(wait):
		}
		wait = min(wait*2, c.RetryMax)
	}
}

// poison moves an invalid message to the DLQ with its reason, then acks it. The ack waits for
// the DLQ's confirm, so the message is never in neither place.
func (c *Consumer) poison(ctx context.Context, src broker.Source, d amqp.Delivery, epoch uint64, reason string) {
	key := d.RoutingKey
	if key == "" {
		key = src.RoutingKey
	}
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	headers[HeaderError] = reason
	headers[HeaderRoutingKey] = key
	headers[HeaderQueue] = src.Queue
	headers[HeaderPoisonedAt] = time.Now().UTC().Format(time.RFC3339)
	msg := amqp.Publishing{Headers: headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		MessageId: d.MessageId, Timestamp: d.Timestamp, Type: d.Type, AppId: d.AppId, Body: d.Body}
	wait := c.RetryMin
	for {
		err := c.Publisher.Publish(ctx, "", c.Topology.DLQ, msg)
		if err == nil {
			break
		}
		c.Log.Warn("cannot move a poison message to the DLQ yet; holding it", "queue", src.Queue, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, c.RetryMax)
	}
	if c.ack(d, epoch) {
		c.Metrics.Messages.WithLabelValues(src.Queue, OutcomePoison).Inc()
		c.Log.Warn("poison message moved to the DLQ", "queue", src.Queue, "reason", reason, "dlq", c.Topology.DLQ,
			"messageId", d.MessageId, "redelivered", d.Redelivered)
	}
}

// ack acks a delivery unless the connection was re-established since it arrived: its tag then
// belongs to the old channel, and the broker has already requeued it (its redelivery will be a
// duplicate, acked then).
func (c *Consumer) ack(d amqp.Delivery, epoch uint64) bool {
	if c.Conn.Epoch() != epoch {
		c.Log.Info("not acking a delivery from before a reconnection; the broker redelivers it", "messageId", d.MessageId)
		return false
	}
	if err := d.Ack(false); err != nil {
		c.Log.Warn("ack failed; the broker redelivers the message and its duplicate is acked then", "error", err)
		return false
	}
	return true
}

// pollDepths keeps writeback_queue_messages current, for the queue-growing and DLQ alerts.
func (c *Consumer) pollDepths(ctx context.Context) {
	every := c.DepthEvery
	if every <= 0 {
		every = 15 * time.Second
	}
	queues := []string{c.Topology.PlacementQueue, c.Topology.ScanQueue, c.Topology.DLQ}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if ch, err := c.Conn.Channel(); err == nil {
			for _, q := range queues {
				// Passive declare of a missing queue closes the channel: check one at a time.
				info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
				if err != nil {
					break
				}
				c.Metrics.QueueDepth.WithLabelValues(q).Set(float64(info.Messages))
			}
			_ = ch.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
