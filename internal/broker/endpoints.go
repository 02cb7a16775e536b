package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// nodeDialTimeout bounds the TCP connect to one node, so a node that does not answer (rather than
// refuses) does not hold up the failover to the next for amqp091-go's 30 s. handshakeTimeout bounds
// the TLS and AMQP handshakes after it (a frozen node that accepts but never speaks): amqp091-go
// clears the deadline once the connection is open, as it does for its own dialer.
const (
	nodeDialTimeout  = 5 * time.Second
	handshakeTimeout = 15 * time.Second
)

// endpoints are the nodes of one RabbitMQ cluster: AMQP_URL holds one URL, or several separated by
// commas (the same user, password and vhost on each). Connections go to the nodes in turn (round
// robin), skipping a node that does not accept — when a node dies its quorum queues elect a leader
// on another, so any node will do. Taking turns also means a node that accepts but never completes
// the handshake costs one attempt, not every one. The same dialer serves amqp091-go's recovery, so
// a recovered connection fails over too.
type endpoints struct {
	raw  string // the first URL as given (its query settings, e.g. heartbeat, auth_mechanism, kept)
	uris []amqp.URI
	next atomic.Int32 // the node tried first by the next dial
	tls  *tls.Config  // set for amqps: the handshake is done here, per node (its own server name)

	mu   sync.Mutex
	sock net.Conn // the TCP connection dialed last (the one in use), for drop
}

var errMixedURLs = errors.New("AMQP_URL: every URL in the list must have the same scheme, user, password and vhost (one cluster)")

// parseEndpoints reads AMQP_URL. Its errors quote nothing of the URLs (they hold a password).
func parseEndpoints(s string) (*endpoints, error) {
	e := &endpoints{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := amqp.ParseURI(part)
		if err != nil {
			return nil, errors.New("AMQP_URL is malformed (amqp://user:password@host:port/vhost, several separated by commas; " +
				"percent-encode reserved characters in the password)")
		}
		if len(e.uris) > 0 {
			f := e.uris[0]
			if u.Scheme != f.Scheme || u.Username != f.Username || u.Password != f.Password || u.Vhost != f.Vhost {
				return nil, errMixedURLs
			}
		}
		if len(e.uris) == 0 {
			e.raw = part
		}
		e.uris = append(e.uris, u)
	}
	if len(e.uris) == 0 {
		return nil, errors.New("AMQP_URL is empty")
	}
	return e, nil
}

// libURL is the URL amqp091-go is given: the first node's, for credentials and vhost. With TLS the
// dialer does the handshake, so the library gets the plain scheme (it would otherwise wrap the
// connection again, with the first node's name for every node).
func (e *endpoints) libURL() string {
	if rest, ok := strings.CutPrefix(e.raw, "amqps://"); ok {
		return "amqp://" + rest // the port does not matter: dial takes each node's own
	}
	return e.raw
}

// dial connects to the first node that accepts, starting with the one after the last that did.
func (e *endpoints) dial(network, _ string) (net.Conn, error) {
	n := len(e.uris)
	start := int(e.next.Load())
	var errs []error
	for i := range n {
		k := (start + i) % n
		u := e.uris[k]
		addr := net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
		conn, err := net.DialTimeout(network, addr, nodeDialTimeout)
		raw := conn
		if err == nil {
			err = conn.SetDeadline(time.Now().Add(handshakeTimeout))
		}
		if err == nil && e.tls != nil {
			cfg := e.tls.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName = u.Host
			}
			c := tls.Client(conn, cfg)
			if err = c.Handshake(); err != nil {
				_ = conn.Close()
			} else {
				conn = c
			}
		}
		if err == nil {
			e.next.Store(int32((k + 1) % n))
			e.mu.Lock()
			e.sock = raw
			e.mu.Unlock()
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return nil, errors.Join(errs...)
}

// drop closes the socket of the connection in use, as a dying node would: amqp091-go's calls
// waiting on it return, and the connection's owner connects again. Closing the TCP socket rather
// than a TLS layer over it cannot block on a peer that stopped reading.
func (e *endpoints) drop() {
	e.mu.Lock()
	sock := e.sock
	e.mu.Unlock()
	if sock != nil {
		_ = sock.Close()
	}
}

// String names the nodes with the password hidden.
func (e *endpoints) String() string {
	out := make([]string, len(e.uris))
	for i, u := range e.uris {
		if u.Password != "" {
			u.Password = "xxxxx"
		}
		out[i] = u.String()
	}
	return strings.Join(out, ",")
}
