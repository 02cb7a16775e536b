// Package naive is the pre-fix Inbound Data Writer, kept only to replay the incident side by side
// with writeback: it consumes placement messages, calls TCS directly, and on any TCS error rejects
// the message without requeue — so a momentary outage loses the update.
package naive

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/tcs"
)

// Consumer is the naive consumer.
type Consumer struct {
	Conn     *broker.Conn
	Exchange string
	Queue    string // its own copy of placement.exported
	DLX, DLQ string // where rejected messages pile up, as in the incident
	TCS      *tcs.Client
	Log      *slog.Logger
	Rejected atomic.Int64
	Written  atomic.Int64
}

// Run declares its queue and consumes until ctx ends.
func (c *Consumer) Run(ctx context.Context) error {
	ch, err := c.Conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(c.DLX, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(c.DLQ, true, false, false, false, nil); err != nil {
		return err
	}
	if err := ch.QueueBind(c.DLQ, "", c.DLX, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(c.Queue, true, false, false, false, amqp.Table{"x-dead-letter-exchange": c.DLX}); err != nil {
		return err
	}
	if err := ch.QueueBind(c.Queue, contract.RoutingKeyPlacementExported, c.Exchange, false, nil); err != nil {
		return err
	}
	if err := ch.Qos(20, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(c.Queue, "naive", false, false, false, false, nil)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case d, ok := <-deliveries:
			if !ok {
				wg.Wait()
				return nil
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c.handle(ctx, d)
			}()
		}
	}
}

func (c *Consumer) handle(ctx context.Context, d amqp.Delivery) {
	m, err := contract.DecodePlacement(d.Body)
	if err != nil {
		_ = d.Reject(false)
		return
	}
	err = c.TCS.MarkESRExported(ctx, tcs.ESRExport{PlacementID: m.PlacementID, PositionNumber: m.PositionNumber,
		PositionID: m.PositionID, Filename: m.Filename, ExportedAt: m.ExportedAt}, "")
	if err != nil {
		// The incident: TCS's unavailability treated like a problem with the message.
		c.Rejected.Add(1)
		_ = d.Reject(false)
		return
	}
	c.Written.Add(1)
	_ = d.Ack(false)
}
