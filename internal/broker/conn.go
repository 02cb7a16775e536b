package broker

import (
	"fmt"
	"log/slog"
	"sync"
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
	// RetryInterval between reconnection attempts (0: 2 s); reconnecting never gives up.
	RetryInterval time.Duration
	// RPCTimeout bounds the wait for one reply of the broker (0: 30 s): see bounded.
	RPCTimeout time.Duration
	Name       string // connection name shown in the management UI
}

// Conn is a broker connection that makes itself again whenever it is lost, failing over between
// the cluster's nodes, until Close. Channels are opened per use, and a channel of a lost connection
// stays closed: its user opens a new one (the Publisher does so by itself).
//
// Why not amqp091-go's own recovery (Config.Recovery): it reopens every channel the lost connection
// had, and a channel that was being opened when the connection died never reopens ("channel/connection
// is not open"), so its recovery retried for ever and every later call failed — seen in v1.16.0 and
// v1.17.0 with a connection cut while channels were opened (TestChannelsOpenedWhileTheConnectionRecoversComeBack).
// A fresh connection carries no such state.
//
// Channel and Do bound every wait for the broker (see bounded).
type Conn struct {
	eps   *endpoints
	cfg   amqp.Config
	log   *slog.Logger
	rpc   time.Duration
	retry time.Duration

	mu      sync.Mutex
	cur     *amqp.Connection // nil while connecting again
	changed chan struct{}    // closed when cur changes
	closed  bool             // by Close
	stop    chan struct{}
}

// Dial connects, trying until it succeeds or attempts run out (0: forever); the connection then
// reconnects by itself.
func Dial(c ConnConfig, log *slog.Logger, attempts int, stop <-chan struct{}) (*Conn, error) {
	eps, cfg, err := amqpConfig(c)
	if err != nil {
		return nil, err
	}
	wait := 500 * time.Millisecond
	for i := 0; ; i++ {
		conn, err := amqp.DialConfig(eps.libURL(), cfg)
		if err == nil {
			retry := c.RetryInterval
			if retry <= 0 {
				retry = 2 * time.Second
			}
			bc := &Conn{eps: eps, cfg: cfg, log: log, rpc: rpcTimeout(c), retry: retry,
				cur: conn, changed: make(chan struct{}), stop: make(chan struct{})}
			go bc.keep(conn)
			return bc, nil
		}
		if attempts > 0 && i+1 >= attempts {
			return nil, fmt.Errorf("RabbitMQ at %s: %w", eps, err)
		}
		log.Warn("cannot reach RabbitMQ yet; trying again", "url", eps.String(), "error", err, "wait", wait)
		select {
		case <-stop:
			return nil, fmt.Errorf("RabbitMQ at %s: %w", eps, err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

// keep connects again each time the connection is lost, until Close.
func (c *Conn) keep(conn *amqp.Connection) {
	for {
		lost := <-conn.NotifyClose(make(chan *amqp.Error, 1))
		if !c.set(nil) {
			return
		}
		c.log.Warn("RabbitMQ connection lost; connecting again", "error", lost)
		for {
			select {
			case <-c.stop:
				return
			case <-time.After(c.retry):
			}
			var err error
			if conn, err = amqp.DialConfig(c.eps.libURL(), c.cfg); err == nil {
				break
			}
			c.log.Warn("cannot reach RabbitMQ yet; trying again", "url", c.eps.String(), "error", err, "wait", c.retry)
		}
		if !c.set(conn) {
			_ = conn.CloseDeadline(time.Now().Add(c.rpc))
			return
		}
		c.log.Info("RabbitMQ connection recovered")
	}
}

// set makes conn the current connection; false once closed.
func (c *Conn) set(conn *amqp.Connection) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.cur = conn
	close(c.changed)
	c.changed = make(chan struct{})
	return true
}

// Channel opens a channel on the current connection, waiting for it while it is being made again;
// it fails within the RPC timeout.
func (c *Conn) Channel() (*amqp.Channel, error) {
	deadline := time.NewTimer(c.rpc)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		cur, changed, closed := c.cur, c.changed, c.closed
		c.mu.Unlock()
		if closed {
			return nil, amqp.ErrClosed
		}
		if cur != nil && !cur.IsClosed() {
			return openChannel(c.rpc, cur.Channel, c.eps.drop)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("RabbitMQ connection not back within %s", c.rpc)
		}
	}
}

// Do runs calls that wait for the broker's replies (declare, confirm.select, …) within the RPC
// timeout; what names them in the error.
func (c *Conn) Do(what string, rpc func() error) error { return do(c.rpc, what, c.eps.drop, rpc) }

// Up reports whether the connection is open.
func (c *Conn) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil && !c.cur.IsClosed()
}

// IsClosed reports whether Close was called.
func (c *Conn) IsClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close closes the connection for good, waiting for the broker's close-ok within the RPC timeout.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return amqp.ErrClosed
	}
	c.closed = true
	close(c.stop)
	close(c.changed) // a Channel waiting for the next connection learns there is none
	cur := c.cur
	c.mu.Unlock()
	if cur == nil {
		return nil
	}
	return cur.CloseDeadline(time.Now().Add(c.rpc))
}

// DialPlain makes one attempt at a connection that is not made again when lost. The consumer uses
// it: each channel it opens is one incarnation, and a delivery is only acked through the channel it
// came from; when the connection dies the consumer dials a new one itself.
func DialPlain(c ConnConfig) (*PlainConn, error) {
	eps, cfg, err := amqpConfig(c)
	if err != nil {
		return nil, err
	}
	conn, err := amqp.DialConfig(eps.libURL(), cfg)
	if err != nil {
		return nil, fmt.Errorf("RabbitMQ at %s: %w", eps, err)
	}
	return &PlainConn{Connection: conn, eps: eps, rpc: rpcTimeout(c)}, nil
}

// PlainConn is a connection whose Channel and Do bound every wait for the broker; a reply that does
// not come closes it (see bounded).
type PlainConn struct {
	*amqp.Connection
	eps *endpoints
	rpc time.Duration
}

// Channel opens a channel, or fails within the RPC timeout.
func (c *PlainConn) Channel() (*amqp.Channel, error) {
	return openChannel(c.rpc, c.Connection.Channel, c.eps.drop)
}

// Do runs calls that wait for the broker's replies (declare, consume, …) within the RPC timeout;
// what names them in the error.
func (c *PlainConn) Do(what string, rpc func() error) error { return do(c.rpc, what, c.eps.drop, rpc) }

// Close closes the connection, waiting for the broker's close-ok within the RPC timeout.
func (c *PlainConn) Close() error { return c.CloseDeadline(time.Now().Add(c.rpc)) }

func rpcTimeout(c ConnConfig) time.Duration {
	if c.RPCTimeout > 0 {
		return c.RPCTimeout
	}
	return defaultRPCTimeout
}

func amqpConfig(c ConnConfig) (*endpoints, amqp.Config, error) {
	eps, err := parseEndpoints(c.URL)
	if err != nil {
		return nil, amqp.Config{}, err
	}
	cfg := amqp.Config{
		Heartbeat:  10 * time.Second,
		Properties: amqp.NewConnectionProperties(),
		Dial:       eps.dial,
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
