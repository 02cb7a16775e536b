package ops

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/starter/intake"
)

// RedriveItem is one DLQ message and what became of it.
type RedriveItem struct {
	MessageID  string
	RoutingKey string
	Reason     string // why it was dead-lettered
	Outcome    string // redriven, would redrive, kept (and why)
}

// Redrive moves the messages the DLQ holds when it starts (a snapshot: what comes back into the
// DLQ meanwhile is not touched, so it cannot loop) back to the exchange under their original
// routing key, each with a confirm before its ack. A message without a known routing key stays.
// by and why are who moves them and why, carried on each message into its record's workflow.
func Redrive(ctx context.Context, conn *broker.Conn, pub *broker.Publisher, topo broker.Topology, dryRun bool,
	by, why string, each func(RedriveItem)) ([]RedriveItem, error) {
	return redrive(ctx, conn, pub, topo, dryRun, by, why, nil, each)
}

// redrive is Redrive for the messages only accepts (all when nil); the others stay in the DLQ.
func redrive(ctx context.Context, conn *broker.Conn, pub *broker.Publisher, topo broker.Topology, dryRun bool,
	by, why string, only func(amqp.Delivery) (bool, string), each func(RedriveItem)) ([]RedriveItem, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	// Closing the channel returns every message still unacked (dry run, kept ones) to the DLQ.
	defer broker.CloseChannel(conn, ch)
	q, err := broker.InspectQueue(conn, ch, topo.DLQ)
	if err != nil {
		return nil, fmt.Errorf("DLQ %s: %w", topo.DLQ, err)
	}
	var items []RedriveItem
	for i := 0; i < q.Messages; i++ {
		var d amqp.Delivery
		var ok bool
		err := conn.Do("basic.get from the DLQ", func() (err error) {
			d, ok, err = ch.Get(topo.DLQ, false)
			return err
		})
		if err != nil {
			return items, err
		}
		if !ok {
			break
		}
		it := RedriveItem{MessageID: d.MessageId, RoutingKey: RoutingKeyOf(d), Reason: ReasonOf(d)}
		var skip string
		if only != nil {
			var ok bool
			if ok, skip = only(d); ok {
				skip = ""
			}
		}
		switch {
		case skip != "":
			it.Outcome = "kept: " + skip
		case it.RoutingKey == "":
			it.Outcome = "kept: no original routing key in x-writeback-routing-key or x-death"
		case dryRun:
			it.Outcome = "would redrive"
		default:
			headers := amqp.Table{}
			for k, v := range d.Headers {
				headers[k] = v
			}
			headers[intake.HeaderRedrivenAt] = time.Now().UTC().Format(time.RFC3339)
			headers[intake.HeaderRedrivenBy], headers[intake.HeaderRedriveWhy] = by, why
			err := pub.Publish(ctx, topo.Exchange, it.RoutingKey, amqp.Publishing{Headers: headers, ContentType: d.ContentType,
				ContentEncoding: d.ContentEncoding, MessageId: d.MessageId, Timestamp: d.Timestamp, Type: d.Type, AppId: d.AppId, Body: d.Body})
			if err != nil {
				it.Outcome = "kept: republish failed: " + err.Error()
				break
			}
			if err := d.Ack(false); err != nil {
				// Republished but still in the DLQ: it may come back as a duplicate, which is harmless.
				it.Outcome = "redriven (its DLQ copy could not be removed: " + err.Error() + ")"
				break
			}
			it.Outcome = "redriven"
		}
		items = append(items, it)
		if each != nil {
			each(it)
		}
	}
	return items, nil
}

// RoutingKeyOf finds a dead-lettered message's original routing key: the starter's header for a
// poison message, or x-death for one the broker dead-lettered (delivery limit).
func RoutingKeyOf(d amqp.Delivery) string {
	if k, ok := d.Headers[intake.HeaderRoutingKey].(string); ok && k != "" {
		return k
	}
	if deaths, ok := d.Headers["x-death"].([]any); ok {
		for _, x := range deaths {
			death, ok := x.(amqp.Table)
			if !ok {
				continue
			}
			if keys, ok := death["routing-keys"].([]any); ok && len(keys) > 0 {
				if k, ok := keys[0].(string); ok && k != "" {
					return k
				}
			}
		}
	}
	return ""
}

// ReasonOf says why a message is in the DLQ.
func ReasonOf(d amqp.Delivery) string {
	if r, ok := d.Headers[intake.HeaderError].(string); ok && r != "" {
		return r
	}
	if deaths, ok := d.Headers["x-death"].([]any); ok && len(deaths) > 0 {
		if death, ok := deaths[0].(amqp.Table); ok {
			return fmt.Sprintf("dead-lettered by the broker (%v) from queue %v", death["reason"], death["queue"])
		}
	}
	return "unknown"
}
