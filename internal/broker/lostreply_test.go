package broker_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/testenv"
)

// The cluster run (make test-cluster) hung for good when a broker reply was lost while a node
// stopped: amqp091-go waits for channel.open-ok (and any other reply) with no deadline, on a
// connection whose heartbeats still flow. These tests lose replies on purpose, with a proxy in
// front of the real RabbitMQ, and require every call to come back and the connection to recover.

const testRPCTimeout = 2 * time.Second

// replyLoser forwards AMQP between clients and the real broker and can swallow the broker's next
// channel.open-ok frames or cut every connection.
type replyLoser struct {
	ln       net.Listener
	upstream string
	drop     atomic.Int32 // channel.open-ok frames still to swallow
	mu       sync.Mutex
	conns    []net.Conn
}

func startReplyLoser(t *testing.T) *replyLoser {
	t.Helper()
	uri, err := amqp.ParseURI(testenv.AMQPURL(t))
	require.NoError(t, err)
	upstream := net.JoinHostPort(uri.Host, fmt.Sprint(uri.Port))
	if c, err := net.DialTimeout("tcp", upstream, 2*time.Second); err != nil {
		t.Fatalf("RabbitMQ at %s: %v", upstream, err)
	} else {
		_ = c.Close()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &replyLoser{ln: ln, upstream: upstream}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	return p
}

func (p *replyLoser) url() string { return "amqp://guest:guest@" + p.ln.Addr().String() + "/" }

func (p *replyLoser) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
		go func() { p.forwardFrames(c, u); _ = c.Close() }()
	}
}

// forwardFrames copies the broker's frames to the client, leaving out a channel.open-ok (method
// frame of class 20, method 11) while drop is positive.
func (p *replyLoser) forwardFrames(client, broker net.Conn) {
	header := make([]byte, 7)
	for {
		if _, err := io.ReadFull(broker, header); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(header[3:7])
		rest := make([]byte, size+1) // payload and the frame-end octet
		if _, err := io.ReadFull(broker, rest); err != nil {
			return
		}
		if header[0] == 1 && size >= 4 && binary.BigEndian.Uint16(rest[0:2]) == 20 && binary.BigEndian.Uint16(rest[2:4]) == 11 {
			if p.drop.Add(-1) >= 0 {
				continue
			}
			p.drop.Store(0)
		}
		if _, err := client.Write(append(header, rest...)); err != nil {
			return
		}
	}
}

// cut closes every proxied connection, as a node that dies does.
func (p *replyLoser) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// within runs f and fails the test if it has not returned after d (the hang being tested for).
// It may be called from any goroutine.
func within[T any](t *testing.T, d time.Duration, what string, f func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	got := make(chan result, 1)
	go func() { v, err := f(); got <- result{v, err} }()
	select {
	case r := <-got:
		return r.v, r.err
	case <-time.After(d):
		t.Errorf("%s had not returned after %s: a lost broker reply hangs it", what, d)
		var zero T
		return zero, fmt.Errorf("%s hung", what)
	}
}

// dial connects through the proxy with a short RPC timeout, closed when the test ends.
func (p *replyLoser) dial(t *testing.T) *broker.Conn {
	t.Helper()
	conn, err := broker.Dial(broker.ConnConfig{URL: p.url(), RetryInterval: 200 * time.Millisecond,
		RPCTimeout: testRPCTimeout, Name: "writeback-test-lost-reply"}, quiet(), 3, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestAChannelOpenTheBrokerNeverAnswersComesBackAndTheConnectionRecovers(t *testing.T) {
	p := startReplyLoser(t)
	conn := p.dial(t)

	p.drop.Store(1)
	ch, err := within(t, 20*time.Second, "Channel()", conn.Channel)
	require.Error(t, err, "a channel.open-ok that never came is an error, not a channel")
	require.Nil(t, ch)
	require.ErrorContains(t, err, "did not answer")

	// The connection was dropped and recovered: channels open again, and a publish is confirmed.
	queue := fmt.Sprintf("wbtest-lost-reply-%d", time.Now().UnixNano())
	require.Eventually(t, func() bool {
		ch, err := conn.Channel()
		if err != nil {
			return false
		}
		defer ch.Close()
		_, err = ch.QueueDeclare(queue, false, false, false, false, amqp.Table{"x-expires": int32(60000)})
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the connection recovers after the lost reply")
	pub, err := within(t, 20*time.Second, "NewPublisher", func() (*broker.Publisher, error) { return broker.NewPublisher(conn) })
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, pub.Publish(ctx, "", queue, amqp.Publishing{Body: []byte("after the lost reply")}))
}

func TestAPublisherWhoseChannelIsNeverOpenedComesBack(t *testing.T) {
	p := startReplyLoser(t)
	conn := p.dial(t)

	p.drop.Store(1)
	_, err := within(t, 20*time.Second, "NewPublisher", func() (*broker.Publisher, error) { return broker.NewPublisher(conn) })
	require.ErrorContains(t, err, "did not answer")
	pub, err := within(t, 40*time.Second, "NewPublisher after recovery", func() (*broker.Publisher, error) {
		for deadline := time.Now().Add(30 * time.Second); ; {
			pub, err := broker.NewPublisher(conn)
			if err == nil || time.Now().After(deadline) {
				return pub, err
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	require.NoError(t, err)
	require.NoError(t, pub.Close())
}

func TestAChannelOpenNeverAnsweredOnAConsumerConnectionClosesIt(t *testing.T) {
	p := startReplyLoser(t)
	conn, err := broker.DialPlain(broker.ConnConfig{URL: p.url(), RPCTimeout: testRPCTimeout, Name: "writeback-test-lost-reply"})
	require.NoError(t, err)
	defer conn.Close()

	p.drop.Store(1)
	_, err = within(t, 20*time.Second, "Channel()", conn.Channel)
	require.ErrorContains(t, err, "did not answer")
	// Without recovery the consumer redials when its connection closes: it must close.
	require.Eventually(t, conn.IsClosed, 10*time.Second, 50*time.Millisecond)
}

// Opening channels while the connection is cut again and again (a node stopping, failing over):
// amqp091-go asks callers not to open channels while it recovers; every call must come back.
func TestChannelsOpenedWhileTheConnectionRecoversComeBack(t *testing.T) {
	p := startReplyLoser(t)
	conn := p.dial(t)

	stop := time.Now().Add(12 * time.Second)
	var wg sync.WaitGroup
	var slowest atomic.Int64
	var opened atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				start := time.Now()
				ch, err := within(t, 2*testRPCTimeout+10*time.Second, "Channel() while recovering", conn.Channel)
				if d := time.Since(start); int64(d) > slowest.Load() {
					slowest.Store(int64(d))
				}
				if err == nil {
					opened.Add(1)
					_ = ch.Close()
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	for time.Now().Before(stop.Add(-3 * time.Second)) {
		time.Sleep(700 * time.Millisecond)
		p.cut()
	}
	wg.Wait()
	t.Logf("opened %d channels; slowest call %s", opened.Load(), time.Duration(slowest.Load()))
	_, err := within(t, 30*time.Second, "Channel() after the cuts", func() (*amqp.Channel, error) {
		for {
			ch, err := conn.Channel()
			if err == nil {
				return ch, ch.Close()
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	require.NoError(t, err)
}

// A publish confirmed just before its connection died: waiting for it must still return (the
// returns of a closed channel are closed, and reading them must not spin under the lock).
func TestAConfirmWaitedForAfterTheConnectionDiedReturns(t *testing.T) {
	p := startReplyLoser(t)
	conn := p.dial(t)
	queue := fmt.Sprintf("wbtest-late-wait-%d", time.Now().UnixNano())
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDeclare(queue, false, false, false, false, amqp.Table{"x-expires": int32(60000)})
	require.NoError(t, err)
	pub, err := broker.NewPublisher(conn)
	require.NoError(t, err)

	pending, err := pub.PublishAsync(context.Background(), "", queue, amqp.Publishing{Body: []byte("confirmed, then cut")})
	require.NoError(t, err)
	time.Sleep(500 * time.Millisecond) // the confirm arrives
	p.cut()
	require.Eventually(t, func() bool { return !conn.Up() }, 5*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	_, err = within(t, 10*time.Second, "Wait after the connection died", func() (struct{}, error) {
		return struct{}{}, pending.Wait(context.Background())
	})
	require.NoError(t, err, "the broker confirmed it before the cut")
	// and the publisher goes on, on the next connection
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.Eventually(t, func() bool {
		return pub.Publish(ctx, "", queue, amqp.Publishing{Body: []byte("after")}) == nil
	}, 20*time.Second, 100*time.Millisecond)
}
