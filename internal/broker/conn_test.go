package broker_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/broker"
)

func TestTLSSettingsAreChecked(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err := broker.Dial(broker.ConnConfig{URL: "amqps://u:secret-pw@127.0.0.1:1/", CAFile: filepath.Join(t.TempDir(), "none.pem")}, log, 1, nil)
	require.ErrorContains(t, err, "AMQP CA")
	_, err = broker.Dial(broker.ConnConfig{URL: "amqps://u:secret-pw@127.0.0.1:1/", CertFile: "x"}, log, 1, nil)
	require.ErrorContains(t, err, "both a certificate and a key")
	_, err = broker.Dial(broker.ConnConfig{URL: "amqp://u:secret-pw@127.0.0.1:1/"}, log, 1, nil)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret-pw", "the password never shows in errors")
}

func TestTopologyDefaultsAreTheContract(t *testing.T) {
	top := broker.DefaultTopology()
	require.Equal(t, "writeback", top.Exchange)
	require.Equal(t, "writeback.placement.exported", top.PlacementQueue)
	require.Equal(t, "writeback.scan.completed", top.ScanQueue)
	require.Equal(t, "writeback.dlx", top.DLX)
	require.Equal(t, "writeback.dlq", top.DLQ)
	require.Equal(t, 20, top.DeliveryLimit)
	args := top.QueueArgs()
	require.Equal(t, "quorum", args["x-queue-type"])
	require.EqualValues(t, 20, args["x-delivery-limit"])
	require.Equal(t, "writeback.dlx", args["x-dead-letter-exchange"])
}
