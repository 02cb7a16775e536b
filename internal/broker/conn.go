package broker

import (
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/tis-writeback/writeback/internal/tlsfiles"
)

// ConnConfig says how to reach the broker.
type ConnConfig struct {
	// URL is one amqp:// or amqps:// URL, or several separated by commas: the nodes of one cluster,
	// failed over in turn (see endpoints).
	URL string
	// TLS for amqps:// URLs: a CA bundle and an optional client certificate.
	CAFile, CertFile, KeyFile string
	// RetryInterval between reconnection attempts; recovery never gives up.
	RetryInterval time.Duration
	Name          string // connection name shown in the management UI
}

// Conn is a broker connection with amqp091-go's automatic recovery. Epoch changes each time the
// connection goes down, so deliveries received before a reconnection are never acked by tag on
// the recovered channel (their tags belong to the old one; the broker has requeued them).
type Conn struct {
	*amqp.Connection
	epoch atomic.Uint64
	up    atomic.Bool
	log   *slog.Logger
}

// Dial connects with recovery enabled, trying until it succeeds or attempts run out (0: forever).
func Dial(c ConnConfig, log *slog.Logger, attempts int, stop <-chan struct{}) (*Conn, error) {
	eps, cfg, err := amqpConfig(c, true)
	if err != nil {
		return nil, err
	}
	wait := 500 * time.Millisecond
	for i := 0; ; i++ {
		conn, err := amqp.DialConfig(eps.libURL(), cfg)
		if err == nil {
			bc := &Conn{Connection: conn, log: log}
			bc.up.Store(true)
			bc.watch()
			return bc, nil
		}
		if attempts > 0 && i+1 >= attempts {
			return nil, fmt.Errorf("RabbitMQ at %s: %w", eps, err)
		}
		log.Warn("cannot reach RabbitMQ yet; trying again", "url", eps, "error", err, "wait", wait)
		select {
		case <-stop:
			return nil, fmt.Errorf("RabbitMQ at %s: %w", eps, err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

// DialPlain makes one attempt at a connection WITHOUT amqp091-go's recovery. The consumer uses it:
// the library reopens a broker-closed channel as the same *amqp.Channel with delivery tags starting
// again at 1, so a delivery from before could be acked on the reopened channel (the wrong message,
// or a 406 that closes it again). On a connection of its own, each channel the consumer opens is
// one incarnation: once closed, acks through it fail, and the consumer opens a new one itself.
func DialPlain(c ConnConfig) (*amqp.Connection, error) {
	eps, cfg, err := amqpConfig(c, false)
	if err != nil {
		return nil, err
	}
	conn, err := amqp.DialConfig(eps.libURL(), cfg)
	if err != nil {
		return nil, fmt.Errorf("RabbitMQ at %s: %w", eps, err)
	}
	return conn, nil
}

func amqpConfig(c ConnConfig, recovery bool) (*endpoints, amqp.Config, error) {
	eps, err := parseEndpoints(c.URL)
	if err != nil {
		return nil, amqp.Config{}, err
	}
	cfg := amqp.Config{
		Heartbeat:  10 * time.Second,
		Properties: amqp.NewConnectionProperties(),
		Dial:       eps.dial,
	}
	if recovery {
		retry := c.RetryInterval
		if retry <= 0 {
			retry = 2 * time.Second
		}
		cfg.Recovery = &amqp.Recovery{
			ReconnectionConfig: &amqp.ReconnectionConfig{MaxRetryCount: math.MaxInt32, RetryInterval: retry},
		}
	}
	if c.Name != "" {
		cfg.Properties.SetClientConnectionName(c.Name)
	}
	if eps.uris[0].Scheme == "amqps" || c.CAFile != "" || c.CertFile != "" {
		t, err := tlsfiles.Config("AMQP", c.CAFile, c.CertFile, c.KeyFile, "")
		if err != nil {
			return nil, cfg, err
		}
		if eps.uris[0].Scheme == "amqps" {
			eps.tls = t // the handshake is done by eps.dial, per node
		}
	}
	return eps, cfg, nil
}

func (c *Conn) watch() {
	states := make(chan *amqp.StateChanged, 8)
	c.NotifyStateChange(states)
	go func() {
		for s := range states {
			switch s.To {
			case amqp.StateReconnecting:
				c.epoch.Add(1)
				c.up.Store(false)
				c.log.Warn("RabbitMQ connection lost; recovering", "error", s.Err)
			case amqp.StateOpen:
				c.up.Store(true)
				c.log.Info("RabbitMQ connection recovered")
			case amqp.StateClosed:
				c.epoch.Add(1)
				c.up.Store(false)
			}
		}
	}()
}

// Epoch identifies the current connection incarnation.
func (c *Conn) Epoch() uint64 { return c.epoch.Load() }

// Up reports whether the connection is open.
func (c *Conn) Up() bool { return c.up.Load() && !c.IsClosed() }
