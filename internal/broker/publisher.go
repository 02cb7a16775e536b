package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Publisher publishes persistent, mandatory messages and waits for the broker's confirm, so a
// publish that returns nil is safely in a queue. Safe for concurrent use.
type Publisher struct {
	conn *Conn
	mu   sync.Mutex // guards the fields below
	ch   *amqp.Channel
	// stale is set when a confirm did not come: after a broker restart amqp091-go's recovered
	// channel can take publishes and never confirm them (seen in the chaos run). The next publish
	// opens a fresh channel.
	stale    bool
	returns  chan amqp.Return
	returned map[string]string // message ID → reason, for unroutable messages
}

// NewPublisher opens a confirm-mode channel on conn.
func NewPublisher(conn *Conn) (*Publisher, error) {
	p := &Publisher{conn: conn, returned: map[string]string{}}
	if err := p.open(); err != nil {
		return nil, err
	}
	return p, nil
}

// open opens the confirm-mode channel (mu held, or not yet shared).
func (p *Publisher) open() error {
	ch, err := p.conn.Channel()
	if err != nil {
		return err
	}
	if err := p.conn.Do("confirm.select", func() error { return ch.Confirm(false) }); err != nil {
		_ = ch.Close()
		return fmt.Errorf("publisher confirms: %w", err)
	}
	p.ch, p.returns, p.stale = ch, ch.NotifyReturn(make(chan amqp.Return, 1024)), false
	return nil
}

// channel is the channel to publish on: a fresh one after a lost confirm or a closed channel.
func (p *Publisher) channel() (*amqp.Channel, chan amqp.Return, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stale || p.ch.IsClosed() {
		old := p.ch
		if err := p.open(); err != nil {
			return nil, nil, err
		}
		// Not under the lock: the close-ok of a channel that stopped answering may never come.
		go CloseChannel(p.conn, old)
	}
	return p.ch, p.returns, nil
}

// Pending is a publish awaiting its confirm.
type Pending struct {
	p       *Publisher
	ch      *amqp.Channel
	returns chan amqp.Return // the channel's returns: a reopened channel has its own
	dc      *amqp.DeferredConfirmation
	id      string
	key     string
}

// PublishAsync sends one message and returns without waiting for the confirm.
func (p *Publisher) PublishAsync(ctx context.Context, exchange, key string, msg amqp.Publishing) (*Pending, error) {
	if msg.MessageId == "" {
		msg.MessageId = uuid.NewString()
	}
	msg.DeliveryMode = amqp.Persistent
	ch, returns, err := p.channel()
	if err != nil {
		return nil, err
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		return nil, err
	}
	return &Pending{p: p, ch: ch, returns: returns, dc: dc, id: msg.MessageId, key: key}, nil
}

// confirmTimeout bounds the wait for one confirm: a broker that takes longer is treated like a
// lost confirm.
const confirmTimeout = 30 * time.Second

// ErrNacked means the broker did not take responsibility for the message.
var ErrNacked = errors.New("broker nacked the message")

// Wait blocks until the broker confirmed the message. An unroutable message (mandatory, returned)
// is an error: nobody would ever read it.
func (w *Pending) Wait(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	ok, err := w.dc.WaitContext(wctx)
	if err != nil {
		// No confirm in time: the caller publishes again (at least once), on a fresh channel.
		w.p.mu.Lock()
		if w.p.ch == w.ch {
			w.p.stale = true
		}
		w.p.mu.Unlock()
		if ctx.Err() == nil {
			return fmt.Errorf("no confirm from the broker within %s; publish again", confirmTimeout)
		}
		return err
	}
	if !ok {
		if w.ch.IsClosed() { // amqp091-go resolves the confirms of a closed channel as nacks
			return errors.New("the channel closed before the broker confirmed; publish again")
		}
		return ErrNacked
	}
	// The broker sends basic.return before basic.ack, so a return is already buffered by now.
	if reason, returned := w.p.takeReturn(w.returns, w.id); returned {
		return fmt.Errorf("message with routing key %q was unroutable: %s", w.key, reason)
	}
	return nil
}

// takeReturn reports whether the message id came back unroutable on returns (the channel it was
// published on; closed with that channel).
func (p *Publisher) takeReturn(returns chan amqp.Return, id string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
drain:
	for {
		select {
		case r, open := <-returns:
			if !open {
				break drain
			}
			p.returned[r.MessageId] = r.ReplyText
		default:
			break drain
		}
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
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn.Do("channel.close", p.ch.Close)
}

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
