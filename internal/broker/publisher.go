package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Publisher publishes persistent, mandatory messages and waits for the broker's confirm, so a
// publish that returns nil is safely in a queue.
type Publisher struct {
	ch       *amqp.Channel
	mu       sync.Mutex
	returns  chan amqp.Return
	returned map[string]string // message ID → reason, for unroutable messages
}

// NewPublisher opens a confirm-mode channel on conn.
func NewPublisher(conn *Conn) (*Publisher, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("publisher confirms: %w", err)
	}
	p := &Publisher{ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, 1024)), returned: map[string]string{}}
	return p, nil
}

// Channel is the publisher's channel (e.g. to declare the topology on it).
func (p *Publisher) Channel() *amqp.Channel { return p.ch }

// Pending is a publish awaiting its confirm.
type Pending struct {
	p   *Publisher
	dc  *amqp.DeferredConfirmation
	id  string
	key string
}

// PublishAsync sends one message and returns without waiting for the confirm.
func (p *Publisher) PublishAsync(ctx context.Context, exchange, key string, msg amqp.Publishing) (*Pending, error) {
	if msg.MessageId == "" {
		msg.MessageId = uuid.NewString()
	}
	msg.DeliveryMode = amqp.Persistent
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		return nil, err
	}
	return &Pending{p: p, dc: dc, id: msg.MessageId, key: key}, nil
}

// ErrNacked means the broker did not take responsibility for the message.
var ErrNacked = errors.New("broker nacked the message")

// Wait blocks until the broker confirmed the message. An unroutable message (mandatory, returned)
// is an error: nobody would ever read it.
func (w *Pending) Wait(ctx context.Context) error {
	ok, err := w.dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNacked
	}
	// The broker sends basic.return before basic.ack, so a return is already buffered by now.
	if reason, returned := w.p.takeReturn(w.id); returned {
		return fmt.Errorf("message with routing key %q was unroutable: %s", w.key, reason)
	}
	return nil
}

func (p *Publisher) takeReturn(id string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		select {
		case r := <-p.returns:
			p.returned[r.MessageId] = r.ReplyText
			continue
		default:
		}
		break
	}
	reason, ok := p.returned[id]
	delete(p.returned, id)
	return reason, ok
}

// Publish sends one message and waits for its confirm.
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	w, err := p.PublishAsync(ctx, exchange, key, msg)
	if err != nil {
		return err
	}
	return w.Wait(ctx)
}

// Close closes the channel.
func (p *Publisher) Close() error { return p.ch.Close() }

// Connect dials with recovery and opens a confirming publisher on the connection.
func Connect(c ConnConfig, log *slog.Logger, attempts int, stop <-chan struct{}) (*Conn, *Publisher, error) {
	conn, err := Dial(c, log, attempts, stop)
	if err != nil {
		return nil, nil, err
	}
	pub, err := NewPublisher(conn)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, pub, nil
}
