package broker

import (
	"net"
	"strings"
	"testing"

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

// A node that refuses is skipped; the node that answered is tried first next time.
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
	require.EqualValues(t, 1, e.first.Load(), "the node that answered goes first next time")

	e2, err := parseEndpoints("amqp://g:g@" + deadAddr + "/")
	require.NoError(t, err)
	_, err = e2.dial("tcp", "ignored")
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), deadAddr), "the error names the node: %v", err)
}
