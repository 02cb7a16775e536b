package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/broker"
)

// Headers the starter sets on a message it dead-letters, and the one redrive sets on a message it
// moves back from the DLQ (its record is then recovery traffic: behind fresh records).
const (
	HeaderError      = "x-writeback-error"
	HeaderRoutingKey = "x-writeback-routing-key"
	HeaderQueue      = "x-writeback-queue"
	HeaderPoisonedAt = "x-writeback-poisoned-at"
	HeaderRedrivenAt = "x-writeback-redriven-at"
	HeaderRedrivenBy = "x-writeback-redriven-by"
	HeaderRedriveWhy = "x-writeback-redrive-reason"
)

// Consumer consumes the record queues.
type Consumer struct {
	// Conn is the shared (recovering) connection, used to poll queue depths.
	Conn *broker.Conn
	// Dial opens the consumer's own connection, without amqp091-go's recovery (see
	// broker.DialPlain): every channel the consumer opens is one incarnation, and a delivery is
	// only ever acked through the channel it came from.
	Dial      func() (*broker.PlainConn, error)
	Topology  broker.Topology
	Publisher *broker.Publisher // for poison messages, with confirms
	Starter   Starter
	Log       *slog.Logger
	Metrics   *Metrics
	// Prefetch bounds the deliveries in flight across both queues (split between them: quorum
	// queues do not support a channel-wide prefetch).
	Prefetch int
	// RetryMin and RetryMax bound the backoff of a held start and of reconnections.
	RetryMin, RetryMax time.Duration
	// DrainTimeout is how long a stop waits for in-flight deliveries.
	DrainTimeout time.Duration
	// DepthEvery is how often the queue depths are polled for writeback_queue_messages (0: 15 s).
	DepthEvery time.Duration

	mu        sync.Mutex
	consuming map[string]bool
}

// Ready says whether every record queue has a consumer; the error names the queues without one.
func (c *Consumer) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing []string
	for _, src := range c.Topology.Sources() {
		if !c.consuming[src.Queue] {
			missing = append(missing, src.Queue)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no consumer on %s", strings.Join(missing, ", "))
	}
	return nil
}

func (c *Consumer) setConsuming(queue string, on bool) {
	c.mu.Lock()
	if c.consuming == nil {
		c.consuming = map[string]bool{}
	}
	c.consuming[queue] = on
	c.mu.Unlock()
	c.Metrics.ConsumerUp.WithLabelValues(queue).Set(b2f(on))
}

// Run consumes until ctx ends, then stops taking deliveries and waits for the ones in flight.
// It reconnects by itself; it returns an error only when the first topology declaration fails.
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
	go c.pollDepths(ctx)
	wait := c.RetryMin
	for first := true; ctx.Err() == nil; first = false {
		conn, err := c.Dial()
		if err == nil {
			err = c.runConnection(ctx, conn)
			_ = conn.Close()
			if err == nil {
				wait = c.RetryMin
			} else if first {
				return err
			}
		}
		if ctx.Err() != nil {
			break
		}
		c.Log.Warn("RabbitMQ connection of the consumer lost; reconnecting", "error", err, "wait", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(wait*2, c.RetryMax)
	}
	c.Log.Info("consumer stopped")
	return nil
}

// runConnection declares the topology and consumes every queue on conn until conn closes or ctx ends.
func (c *Consumer) runConnection(ctx context.Context, conn *broker.PlainConn) error {
	if err := c.Topology.Declare(conn, c.Log); err != nil {
		return err
	}
	sources := c.Topology.Sources()
	var wg sync.WaitGroup
	for _, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.consumeQueue(ctx, conn, src)
		}()
	}
	c.Log.Info("consuming", "queues", []string{sources[0].Queue, sources[1].Queue}, "prefetch", c.Prefetch)
	wg.Wait()
	return nil
}

// consumeQueue keeps a consumer on one queue for as long as conn is open: a channel the broker
// closed, or a consumer it cancelled (queue deleted), is replaced by a new one.
func (c *Consumer) consumeQueue(ctx context.Context, conn *broker.PlainConn, src broker.Source) {
	wait := c.RetryMin
	for {
		err := c.consumeOnce(ctx, conn, src)
		c.setConsuming(src.Queue, false)
		if ctx.Err() != nil || conn.IsClosed() {
			return
		}
		c.Log.Warn("consumer of a record queue stopped; consuming again", "queue", src.Queue, "error", err, "wait", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, c.RetryMax)
	}
}

// consumeOnce runs one channel incarnation: its handlers ack only through it, and stop when it dies.
func (c *Consumer) consumeOnce(ctx context.Context, conn *broker.PlainConn, src broker.Source) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer broker.CloseChannel(conn, ch) // deliveries still unacked are requeued by the broker
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	cancelled := ch.NotifyCancel(make(chan string, 1))
	if err := conn.Do("basic.qos", func() error { return ch.Qos(max(1, c.Prefetch/len(c.Topology.Sources())), 0, false) }); err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	// The queue may have been deleted since the topology was declared: declare it again.
	if err := c.Topology.EnsureSource(conn, src, c.Log); err != nil {
		return err
	}
	tag := fmt.Sprintf("writeback-starter-%s-%d", src.Kind, time.Now().UnixNano())
	var deliveries <-chan amqp.Delivery
	err = conn.Do("basic.consume", func() (err error) {
		deliveries, err = ch.Consume(src.Queue, tag, false, false, false, false, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("consume %s: %w", src.Queue, err)
	}
	c.setConsuming(src.Queue, true)

	// Handlers of this incarnation. They end when the channel dies (their acks could not land),
	// or when a stop's drain timeout passes.
	inc, stopInc := context.WithCancel(context.Background())
	defer stopInc()
	var handlers sync.WaitGroup
	for {
		select {
		case <-ctx.Done():
			_ = conn.Do("basic.cancel", func() error { return ch.Cancel(tag, false) })
			if c.drain(&handlers, stopInc) {
				c.Log.Info("consumer stopped; every delivery in flight was settled", "queue", src.Queue)
			}
			return nil
		case e := <-closed:
			stopInc()
			handlers.Wait()
			return fmt.Errorf("channel closed by the broker: %v", e)
		case <-cancelled:
			return c.cancelledByBroker(ctx, src, &handlers, stopInc, closed)
		case d, ok := <-deliveries:
			if !ok {
				// The library closes the deliveries only when the channel closes or the broker
				// cancels the consumer; the notification may come later, or not reach us at all.
				if ch.IsClosed() {
					stopInc()
					handlers.Wait()
					return errors.New("channel closed")
				}
				return c.cancelledByBroker(ctx, src, &handlers, stopInc, closed)
			}
			handlers.Add(1)
			c.Metrics.InFlight.Inc()
			go func() {
				defer handlers.Done()
				defer c.Metrics.InFlight.Dec()
				c.handle(inc, src, d)
			}()
		}
	}
}

// cancelledByBroker ends an incarnation whose consumer the broker cancelled (queue deleted).
// Deliveries in flight settle on this channel first, so a new consumer never takes the total above
// the prefetch.
func (c *Consumer) cancelledByBroker(ctx context.Context, src broker.Source, handlers *sync.WaitGroup, stop context.CancelFunc,
	closed <-chan *amqp.Error) error {
	c.setConsuming(src.Queue, false)
	c.Log.Warn("the broker cancelled the consumer; consuming again once deliveries in flight settled", "queue", src.Queue)
	c.drainOrDie(ctx, handlers, stop, closed)
	return fmt.Errorf("consumer of %s cancelled by the broker", src.Queue)
}

// drain waits up to the drain timeout for handlers, then ends them (their deliveries are
// requeued). It reports whether every handler settled in time.
func (c *Consumer) drain(handlers *sync.WaitGroup, stop context.CancelFunc) bool {
	drained := make(chan struct{})
	go func() { handlers.Wait(); close(drained) }()
	select {
	case <-drained:
		return true
	case <-time.After(c.DrainTimeout):
		c.Log.Warn("consumer stopped with deliveries still held; the broker requeues them", "timeout", c.DrainTimeout)
		stop()
		<-drained
		return false
	}
}

// drainOrDie waits for handlers while the channel lives; a stop drains as usual.
func (c *Consumer) drainOrDie(ctx context.Context, handlers *sync.WaitGroup, stop context.CancelFunc, closed <-chan *amqp.Error) {
	drained := make(chan struct{})
	go func() { handlers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-closed:
		stop()
		<-drained
	case <-ctx.Done():
		c.drain(handlers, stop)
	}
}

func (c *Consumer) handle(ctx context.Context, src broker.Source, d amqp.Delivery) {
	received := time.Now()
	recovery, origin := redriven(d.Headers)
	rec, err := Parse(src.Kind, d.Body)
	if err != nil {
		inv := err.(*contract.Invalid)
		// A poison message that names its record also becomes a dead letter of that record.
		if rec.WorkflowID != "" {
			rec.Recovery, rec.Origin = recovery, origin
			if st := c.start(ctx, src, rec); st.stopped {
				return // left unacked: redelivered later
			}
		}
		c.deadLetterMessage(ctx, src, d, inv.Reason, OutcomePoison)
		return
	}
	rec.Recovery, rec.Origin = recovery, origin
	st := c.start(ctx, src, rec)
	switch {
	case st.stopped:
	case st.refusal != "":
		c.deadLetterMessage(ctx, src, d, "Temporal refused the start: "+st.refusal, OutcomeRefused)
	default:
		outcome := OutcomeStarted
		if !st.started {
			outcome = OutcomeDuplicate
		}
		if c.ack(d) {
			c.Metrics.Messages.WithLabelValues(src.Queue, outcome).Inc()
			c.Metrics.StartDuration.Observe(time.Since(received).Seconds())
		}
	}
}

// startResult is how a start ended: started (or a duplicate), refused by Temporal for the message
// itself, or given up because the handler was stopped.
type startResult struct {
	started bool
	refusal string
	stopped bool
}

// start starts rec's workflow, holding the delivery and retrying while Temporal is unavailable.
func (c *Consumer) start(ctx context.Context, src broker.Source, rec Record) startResult {
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
			return startResult{started: started}
		}
		if reason, ok := Refusal(err); ok {
			// Temporal refused this message's start (not an outage): holding it would hold it forever.
			c.Log.Error("Temporal refused a start for the message itself; moving it to the DLQ",
				"queue", src.Queue, "workflowId", rec.WorkflowID, "reason", reason)
			if held {
				c.Metrics.Held.Dec()
			}
			return startResult{refusal: reason}
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
			return startResult{stopped: true} // left unacked: requeued by the broker when the channel closes
		case <-time.After(wait):
		}
		wait = min(wait*2, c.RetryMax)
	}
}

// deadLetterMessage moves a message that can never become a workflow (poison, or refused by
// Temporal) to the DLQ with its reason, then acks it. The ack waits for the DLQ's confirm, so the
// message is never in neither place.
func (c *Consumer) deadLetterMessage(ctx context.Context, src broker.Source, d amqp.Delivery, reason, outcome string) {
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
	if c.ack(d) {
		c.Metrics.Messages.WithLabelValues(src.Queue, outcome).Inc()
		c.Log.Warn("message moved to the DLQ", "outcome", outcome, "queue", src.Queue, "reason", reason, "dlq", c.Topology.DLQ,
			"messageId", d.MessageId, "redelivered", d.Redelivered)
	}
}

// ack acks a delivery through the channel it came from. If that channel has died, the ack fails
// and the broker has requeued the message: its redelivery is a duplicate, acked then.
func (c *Consumer) ack(d amqp.Delivery) bool {
	if err := d.Ack(false); err != nil {
		c.Log.Warn("ack failed; the broker redelivers the message and its duplicate is acked then", "error", err)
		return false
	}
	return true
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
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
				// A missing queue closes the channel: the rest wait for the next poll.
				info, err := broker.InspectQueue(c.Conn, ch, q)
				if err != nil {
					break
				}
				c.Metrics.QueueDepth.WithLabelValues(q).Set(float64(info.Messages))
			}
			broker.CloseChannel(c.Conn, ch)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// redriven reads the headers redrive sets: a message moved back from the DLQ is recovery traffic,
// and its origin names who moved it and why. (Other tools may send header values as bytes.)
func redriven(h amqp.Table) (recovery bool, origin string) {
	at, ok := h[HeaderRedrivenAt]
	if !ok {
		return false, ""
	}
	text := func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case []byte:
			return string(v)
		case nil:
			return ""
		}
		return fmt.Sprint(v)
	}
	return true, fmt.Sprintf("redriven from the DLQ at %s by %s: %s", text(at), text(h[HeaderRedrivenBy]), text(h[HeaderRedriveWhy]))
}
