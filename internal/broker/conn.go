package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/tis-writeback/writeback/internal/tlsfiles"
)

// ConnConfig says how to reach the broker.
type ConnConfig struct {
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
	if err := checkURL(c.URL); err != nil {
		return nil, err
	}
	cfg, err := amqpConfig(c, true)
	if err != nil {
		return nil, err
	}
	wait := 500 * time.Millisecond
	for i := 0; ; i++ {
		conn, err := amqp.DialConfig(c.URL, cfg)
		if err == nil {
			bc := &Conn{Connection: conn, log: log}
			bc.up.Store(true)
			bc.watch()
			return bc, nil
		}
		if attempts > 0 && i+1 >= attempts {
			return nil, fmt.Errorf("RabbitMQ at %s: %w", redact(c.URL), err)
		}
		log.Warn("cannot reach RabbitMQ yet; trying again", "url", redact(c.URL), "error", err, "wait", wait)
		select {
		case <-stop:
			return nil, fmt.Errorf("RabbitMQ at %s: %w", redact(c.URL), err)
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
	if err := checkURL(c.URL); err != nil {
		return nil, err
	}
	cfg, err := amqpConfig(c, false)
	if err != nil {
		return nil, err
	}
	conn, err := amqp.DialConfig(c.URL, cfg)
	if err != nil {
		return nil, fmt.Errorf("RabbitMQ at %s: %w", redact(c.URL), err)
	}
	return conn, nil
}

func amqpConfig(c ConnConfig, recovery bool) (amqp.Config, error) {
	cfg := amqp.Config{
		Heartbeat:  10 * time.Second,
		Properties: amqp.NewConnectionProperties(),
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
	if strings.HasPrefix(c.URL, "amqps://") || c.CAFile != "" || c.CertFile != "" {
		t, err := tlsfiles.Config("AMQP", c.CAFile, c.CertFile, c.KeyFile, "")
		if err != nil {
			return cfg, err
		}
		cfg.TLSClientConfig = t
	}
	return cfg, nil
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

// checkURL refuses a malformed AMQP URL with an error that quotes nothing of it: the parser's own
// error would quote the whole URL, password included.
func checkURL(u string) error {
	if _, err := amqp.ParseURI(u); err != nil {
		return errors.New("AMQP_URL is malformed (amqp://user:password@host:port/vhost; percent-encode reserved characters in the password)")
	}
	return nil
}

// redact hides the password of an AMQP URL in logs.
func redact(u string) string {
	uri, err := amqp.ParseURI(u)
	if err != nil {
		return "(unparseable AMQP URL)"
	}
	if uri.Password != "" {
		uri.Password = "xxxxx"
	}
	return uri.String()
}
