package broker

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// defaultRPCTimeout bounds the wait for one reply of the broker. A quorum queue declared while
// its cluster elects a leader can take seconds; half a minute is a broker that will not answer.
const defaultRPCTimeout = 30 * time.Second

// bounded runs rpc, which waits for the broker's reply, for at most d. amqp091-go waits for a reply
// with no deadline, and replies do get lost: in the cluster runs a channel.open-ok and a
// queue.declare-ok never came while a node stopped, on a connection whose heartbeats still flowed,
// and the caller hung for good. After d the connection is dropped (drop closes its socket), which
// makes rpc return (a Conn then connects again; a PlainConn's owner dials anew); a result that
// still comes is handed to discard.
func bounded[T any](d time.Duration, what string, drop func(), rpc func() (T, error), discard func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	got := make(chan result, 1)
	go func() {
		v, err := rpc()
		got <- result{v, err}
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-got:
		return r.v, r.err
	case <-timer.C:
		select { // the answer and the deadline at once: the answer wins
		case r := <-got:
			return r.v, r.err
		default:
		}
		drop()
		go func() {
			if r := <-got; r.err == nil && discard != nil {
				discard(r.v)
			}
		}()
		var zero T
		return zero, fmt.Errorf("RabbitMQ did not answer %s within %s; the connection was dropped and is made again", what, d)
	}
}

// openChannel opens a channel with open (an amqp091-go connection's Channel) within d.
func openChannel(d time.Duration, open func() (*amqp.Channel, error), drop func()) (*amqp.Channel, error) {
	return bounded(d, "opening a channel", drop, open, func(ch *amqp.Channel) { _ = ch.Close() })
}

// do runs calls that wait for the broker's replies within d.
func do(d time.Duration, what string, drop func(), rpc func() error) error {
	_, err := bounded(d, what, drop, func() (struct{}, error) { return struct{}{}, rpc() }, nil)
	return err
}

// CloseChannel closes ch within the RPC timeout of conn: channel.close waits for the broker's
// close-ok like any other call.
func CloseChannel(conn ChannelOpener, ch *amqp.Channel) {
	_ = conn.Do("channel.close", ch.Close)
}

// InspectQueue asks the broker about queue on ch (a passive declare: a missing queue closes ch)
// within the RPC timeout of conn.
func InspectQueue(conn ChannelOpener, ch *amqp.Channel, queue string) (amqp.Queue, error) {
	var q amqp.Queue
	err := conn.Do("queue.declare of "+queue, func() (err error) {
		q, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err
	})
	return q, err
}
