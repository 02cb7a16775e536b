// Package broker holds writeback's RabbitMQ side: the topology (docs/contract.md, Messages on
// RabbitMQ), a connection with
// amqp091-go's built-in recovery, and a publisher with confirms.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tis-writeback/writeback/contract"
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

// DefaultTopology is the topology of docs/contract.md, Messages on RabbitMQ.
func DefaultTopology() Topology {
	return Topology{
		Exchange:       "writeback",
		PlacementQueue: contract.KindPlacement.Spec().Queue,
		ScanQueue:      contract.KindScan.Spec().Queue,
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
	Kind       contract.Kind
}

// Sources lists the consumed queues.
func (t Topology) Sources() []Source {
	return []Source{
		{Queue: t.PlacementQueue, RoutingKey: contract.RoutingKeyPlacementExported, Kind: contract.KindPlacement},
		{Queue: t.ScanQueue, RoutingKey: contract.RoutingKeyScanCompleted, Kind: contract.KindScan},
	}
}

// QueueArgs are the arguments of a consumed queue: quorum, delivery limit, dead-letter exchange,
// and at-least-once dead-lettering (RabbitMQ's default, at-most-once, drops a message dead-lettered
// while the DLQ cannot take it; at-least-once needs reject-publish overflow).
func (t Topology) QueueArgs() amqp.Table {
	args := t.legacyQueueArgs()
	args["x-dead-letter-strategy"] = "at-least-once"
	args["x-overflow"] = "reject-publish"
	return args
}

// legacyQueueArgs are what versions before at-least-once dead-lettering declared.
func (t Topology) legacyQueueArgs() amqp.Table {
	return amqp.Table{
		amqp.QueueTypeArg:        amqp.QueueTypeQuorum,
		"x-delivery-limit":       int64(t.DeliveryLimit),
		"x-dead-letter-exchange": t.DLX,
	}
}

// PolicyCommand is the rabbitmqctl command that gives the record queues at-least-once
// dead-lettering by policy (what deploy/ sets), for queues declared before writeback did.
func (t Topology) PolicyCommand() string {
	return fmt.Sprintf(`rabbitmqctl set_policy --apply-to queues writeback-dead-lettering '^(%s|%s)$' `+
		`'{"dead-letter-exchange":"%s","delivery-limit":%d,"dead-letter-strategy":"at-least-once","overflow":"reject-publish"}'`,
		regexp.QuoteMeta(t.PlacementQueue), regexp.QuoteMeta(t.ScanQueue), t.DLX, t.DeliveryLimit)
}

// ChannelOpener opens channels and bounds the waits for replies on them: a *Conn or a *PlainConn.
// Declaring needs fresh channels, since a refused declaration closes the channel it was made on.
type ChannelOpener interface {
	Channel() (*amqp.Channel, error)
	Do(what string, rpc func() error) error
}

// Declare declares the topology idempotently. A record queue that an older version declared
// without at-least-once dead-lettering is used as it is, with a warning naming the policy that
// fixes it; any other queue that exists with other arguments is an operator's problem to
// resolve, so the error says so instead of changing it.
func (t Topology) Declare(conn ChannelOpener, log *slog.Logger) error {
	if t.DeliveryLimit < 1 {
		return fmt.Errorf("delivery limit %d must be at least 1", t.DeliveryLimit)
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer CloseChannel(conn, ch)
	if err := conn.Do("exchange.declare", func() error {
		return ch.ExchangeDeclare(t.Exchange, amqp.ExchangeTopic, true, false, false, false, nil)
	}); err != nil {
		return explain("exchange "+t.Exchange, err)
	}
	if err := conn.Do("exchange.declare", func() error {
		return ch.ExchangeDeclare(t.DLX, amqp.ExchangeFanout, true, false, false, false, nil)
	}); err != nil {
		return explain("exchange "+t.DLX, err)
	}
	if err := conn.Do("queue.declare", func() error {
		_, err := ch.QueueDeclare(t.DLQ, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum})
		return err
	}); err != nil {
		return explain("queue "+t.DLQ, err)
	}
	if err := conn.Do("queue.bind", func() error { return ch.QueueBind(t.DLQ, "", t.DLX, false, nil) }); err != nil {
		return explain("binding "+t.DLQ, err)
	}
	for _, s := range t.Sources() {
		if err := t.declareSource(conn, s, log); err != nil {
			return err
		}
	}
	return nil
}

// EnsureSource declares one record queue and its binding if the queue is missing (deleted while
// writeback consumed it); an existing queue is left as it is.
func (t Topology) EnsureSource(conn ChannelOpener, s Source, log *slog.Logger) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	_, perr := InspectQueue(conn, ch, s.Queue)
	CloseChannel(conn, ch)
	if perr == nil {
		return nil
	}
	var aerr *amqp.Error
	if !errors.As(perr, &aerr) || aerr.Code != amqp.NotFound {
		return perr
	}
	log.Warn("record queue missing; declaring it again", "queue", s.Queue)
	return t.declareSource(conn, s, log)
}

func (t Topology) declareSource(conn ChannelOpener, s Source, log *slog.Logger) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer CloseChannel(conn, ch)
	if err := conn.Do("queue.declare", func() error {
		_, err := ch.QueueDeclare(s.Queue, true, false, false, false, t.QueueArgs())
		return err
	}); err != nil {
		if !isPreconditionFailed(err) {
			return explain("queue "+s.Queue, err)
		}
		// Declared by an older version? Then it matches the arguments of that version.
		legacy, lerr := conn.Channel()
		if lerr != nil {
			return lerr
		}
		defer CloseChannel(conn, legacy)
		if lerr := conn.Do("queue.declare", func() error {
			_, err := legacy.QueueDeclare(s.Queue, true, false, false, false, t.legacyQueueArgs())
			return err
		}); lerr != nil {
			return explain("queue "+s.Queue, err)
		}
		log.Warn("record queue declared without at-least-once dead-lettering: a message the broker dead-letters while the DLQ "+
			"cannot take it could be dropped; using it as it is. Set this policy to fix it",
			"queue", s.Queue, "policy", t.PolicyCommand())
		ch = legacy
	}
	if err := conn.Do("queue.bind", func() error { return ch.QueueBind(s.Queue, s.RoutingKey, t.Exchange, false, nil) }); err != nil {
		return explain("binding "+s.Queue, err)
	}
	return nil
}

func isPreconditionFailed(err error) bool {
	var aerr *amqp.Error
	return errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed
}

func explain(what string, err error) error {
	if isPreconditionFailed(err) {
		var aerr *amqp.Error
		errors.As(err, &aerr)
		return fmt.Errorf("%s exists with other settings than writeback declares (%s); align or delete it", what, aerr.Reason)
	}
	return fmt.Errorf("declare %s: %w", what, err)
}
