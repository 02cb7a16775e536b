package ops

import (
	"context"
	"log/slog"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/starter/intake"
)

// Returner brings back, by itself, the messages the broker dead-lettered for the delivery limit.
// writeback never judged them bad: they reach the limit only when the broker took them back again
// and again (a consumer_timeout during a Temporal outage longer than the timeout, each time
// counting against x-delivery-limit). Once Temporal is healthy they go back to their queue; a
// poison message (it carries x-writeback-error) is never touched.
type Returner struct {
	Conn     *broker.Conn
	Pub      *broker.Publisher
	Topology broker.Topology
	Log      *slog.Logger
	// Healthy says whether Temporal accepts starts now; no pass runs while it does not.
	Healthy func(context.Context) bool
	// Every is the time between passes.
	Every time.Duration
	// Returned is told of each message put back; Poison of how many poison messages a pass kept.
	Returned func()
	Poison   func(float64)
}

// DeliveryLimitDeadLetter reports whether d was dead-lettered by the broker for the delivery limit
// and never by writeback; otherwise it says why it is not.
func DeliveryLimitDeadLetter(d amqp.Delivery) (bool, string) {
	if _, ok := d.Headers[intake.HeaderError]; ok {
		return false, "a poison message (x-writeback-error): for an operator to look at"
	}
	if deaths, ok := d.Headers["x-death"].([]any); ok && len(deaths) > 0 {
		// The most recent death comes first.
		if death, ok := deaths[0].(amqp.Table); ok && death["reason"] == "delivery_limit" {
			return true, ""
		}
	}
	return false, "not dead-lettered for the delivery limit"
}

// Run looks at the DLQ every Every until ctx ends and, while Temporal is healthy, makes a pass
// whenever the DLQ holds more than the poison messages the last pass kept (and the first time, and
// after each Temporal outage): a delivery-limit dead letter goes back within Every whatever
// happened before. Passes stay rare on purpose: a pass takes every DLQ message and returns the
// poison ones, which counts as a delivery on brokers that limit the DLQ's deliveries too.
func (r *Returner) Run(ctx context.Context) {
	t := time.NewTicker(r.Every)
	defer t.Stop()
	due, kept := true, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !r.Healthy(ctx) || !r.Conn.Up() {
			due = true
			continue
		}
		depth, err := r.depth()
		if err != nil {
			continue
		}
		if depth < kept { // an operator took some away
			kept = depth
			r.setPoison(kept)
		}
		if due || depth > kept {
			if n, ok := r.pass(ctx); ok {
				due, kept = false, n
				r.setPoison(kept)
			}
		}
	}
}

func (r *Returner) setPoison(n int) {
	if r.Poison != nil {
		r.Poison(float64(n))
	}
}

func (r *Returner) depth() (int, error) {
	ch, err := r.Conn.Channel()
	if err != nil {
		return 0, err
	}
	defer broker.CloseChannel(r.Conn, ch)
	q, err := broker.InspectQueue(r.Conn, ch, r.Topology.DLQ)
	return q.Messages, err
}

// pass returns the DLQ's delivery-limit dead letters to their queues; kept counts the messages it
// left there (poison). ok is false when the pass failed.
func (r *Returner) pass(ctx context.Context) (kept int, ok bool) {
	const why = "the broker dead-lettered it for its delivery limit while Temporal was down"
	items, err := redrive(ctx, r.Conn, r.Pub, r.Topology, false, "starter", why, DeliveryLimitDeadLetter, func(it RedriveItem) {
		if it.Outcome == "redriven" {
			r.Log.Info("a message the broker dead-lettered for the delivery limit went back to its queue",
				"messageId", it.MessageID, "routingKey", it.RoutingKey)
			if r.Returned != nil {
				r.Returned()
			}
		}
	})
	if err != nil {
		r.Log.Warn("DLQ pass for delivery-limit dead letters failed; trying again later", "error", err)
		return 0, false
	}
	for _, it := range items {
		if strings.HasPrefix(it.Outcome, "kept") {
			kept++
		}
	}
	return kept, true
}
