// Package broker holds writeback's RabbitMQ side: the topology (SPEC section 2), a connection with
// amqp091-go's built-in recovery, and a publisher with confirms.
package broker

import (
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tis-writeback/writeback/messages"
)

// Topology names the exchanges and queues; the defaults are the contract.
type Topology struct {
	Exchange       string
	PlacementQueue string
	ScanQueue      string
	DLX            string
	DLQ            string
	DeliveryLimit  int
}

// DefaultTopology is SPEC section 2.
func DefaultTopology() Topology {
	return Topology{
		Exchange:       "writeback",
		PlacementQueue: "writeback.placement.exported",
		ScanQueue:      "writeback.scan.completed",
		DLX:            "writeback.dlx",
		DLQ:            "writeback.dlq",
		DeliveryLimit:  20,
	}
}

// WithPrefix renames everything under a prefix (tests, side-by-side installs).
func (t Topology) WithPrefix(p string) Topology {
	t.Exchange = p
	t.PlacementQueue = p + ".placement.exported"
	t.ScanQueue = p + ".scan.completed"
	t.DLX = p + ".dlx"
	t.DLQ = p + ".dlq"
	return t
}

// Source is one consumed queue and the kind of record it carries.
type Source struct {
	Queue      string
	RoutingKey string
	Kind       messages.Kind
}

// Sources lists the consumed queues.
func (t Topology) Sources() []Source {
	return []Source{
		{Queue: t.PlacementQueue, RoutingKey: messages.RoutingKeyPlacementExported, Kind: messages.KindPlacement},
		{Queue: t.ScanQueue, RoutingKey: messages.RoutingKeyScanCompleted, Kind: messages.KindScan},
	}
}

// QueueArgs are the arguments of a consumed queue: quorum, delivery limit, dead-letter exchange.
func (t Topology) QueueArgs() amqp.Table {
	return amqp.Table{
		amqp.QueueTypeArg:        amqp.QueueTypeQuorum,
		"x-delivery-limit":       int64(t.DeliveryLimit),
		"x-dead-letter-exchange": t.DLX,
	}
}

// Declare declares the topology idempotently. A queue that exists with other arguments is an
// operator's problem to resolve, so the error says so instead of changing it.
func (t Topology) Declare(ch *amqp.Channel) error {
	if t.DeliveryLimit < 1 {
		return fmt.Errorf("delivery limit %d must be at least 1", t.DeliveryLimit)
	}
	if err := ch.ExchangeDeclare(t.Exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return explain("exchange "+t.Exchange, err)
	}
	if err := ch.ExchangeDeclare(t.DLX, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return explain("exchange "+t.DLX, err)
	}
	if _, err := ch.QueueDeclare(t.DLQ, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}); err != nil {
		return explain("queue "+t.DLQ, err)
	}
	if err := ch.QueueBind(t.DLQ, "", t.DLX, false, nil); err != nil {
		return explain("binding "+t.DLQ, err)
	}
	for _, s := range t.Sources() {
		if _, err := ch.QueueDeclare(s.Queue, true, false, false, false, t.QueueArgs()); err != nil {
			return explain("queue "+s.Queue, err)
		}
		if err := ch.QueueBind(s.Queue, s.RoutingKey, t.Exchange, false, nil); err != nil {
			return explain("binding "+s.Queue, err)
		}
	}
	return nil
}

func explain(what string, err error) error {
	var aerr *amqp.Error
	if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed {
		return fmt.Errorf("%s exists with other settings than writeback declares (%s); align or delete it", what, aerr.Reason)
	}
	return fmt.Errorf("declare %s: %w", what, err)
}
