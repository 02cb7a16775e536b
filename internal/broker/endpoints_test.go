package broker

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEndpointsParseAndHideThePassword(t *testing.T) {
	e, err := parseEndpoints("amqp://u:s3cret@a:5672/v, amqp://u:s3cret@b:5673/v,")
	require.NoError(t, err)
	require.Len(t, e.uris, 2)
	require.Equal(t, "amqp://u:xxxxx@a/v,amqp://u:xxxxx@b:5673/v", e.String())

	for _, bad := range []string{"", " , ", "http://u:s3cret@a/", "amqp://u:s3cret@a:notaport/"} {
		_, err := parseEndpoints(bad)
		require.Error(t, err, bad)
		require.NotContains(t, err.Error(), "s3cret")
	}
	_, err = parseEndpoints("amqp://u:s3cret@a/v,amqp://other:s3cret@b/v")
	require.ErrorIs(t, err, errMixedURLs, "one cluster: the same credentials and vhost")
	require.NotContains(t, err.Error(), "s3cret")
}

// A node that refuses is skipped; the next dial starts at the node after the one that answered.
func TestEndpointsFailOverToTheNextNode(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	down, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := down.Addr().String()
	_ = down.Close() // nothing listens there now: connection refused

	e, err := parseEndpoints("amqp://g:g@" + deadAddr + "/,amqp://g:g@" + up.Addr().String() + "/")
	require.NoError(t, err)
	c, err := e.dial("tcp", "ignored")
	require.NoError(t, err)
	require.Equal(t, up.Addr().String(), c.RemoteAddr().String())
	_ = c.Close()
	require.EqualValues(t, 0, e.next.Load(), "round robin: the next dial starts after the node that answered")

	e2, err := parseEndpoints("amqp://g:g@" + deadAddr + "/")
	require.NoError(t, err)
	_, err = e2.dial("tcp", "ignored")
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), deadAddr), "the error names the node: %v", err)
}

// A node that accepts the TCP connection but never speaks AMQP (frozen) holds a connection attempt
// only until the handshake deadline; the next attempt goes to another node.
func TestEndpointsAFrozenNodeCostsOneAttempt(t *testing.T) {
	frozen, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer frozen.Close()
	var held []net.Conn
	go func() {
		for {
			c, err := frozen.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // accepted, never answered
		}
	}()
	e, err := parseEndpoints("amqp://g:g@" + frozen.Addr().String() + "/,amqp://g:g@127.0.0.1:1/")
	require.NoError(t, err)
	c, err := e.dial("tcp", "ignored")
	require.NoError(t, err)
	dl := time.Now().Add(handshakeTimeout)
	buf := make([]byte, 1)
	_, err = c.Read(buf) // what amqp091-go's handshake would wait on
	require.Error(t, err, "the read ends at the deadline instead of hanging")
	require.WithinDuration(t, dl, time.Now(), 2*time.Second)
	_ = c.Close()
	require.EqualValues(t, 1, e.next.Load(), "the next attempt starts at the other node")
}
