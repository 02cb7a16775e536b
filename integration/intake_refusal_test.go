package integration_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/starter/intake"
)

func placementWithFile(id int64, file string) []byte {
	b, _ := json.Marshal(map[string]any{"placementId": id, "positionNumber": 1, "positionId": 1, "filename": file,
		"exportedAt": "2021-07-28T13:10:00Z"})
	return b
}

// A filename outside ASCII is valid (docs/contract.md, Messages on RabbitMQ); its workflow ID is
// percent-encoded (docs/contract.md, Workflow IDs), so the SDK can send it and the record is
// written, not held forever.
func TestNonASCIIFilenameIsStartedAndWritten(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	s := testenv.StartSim(t, 100)
	testenv.StartWorker(t, tm, s.URL(), testenv.WorkerOptions{})
	c := startConsumer(t, b, tm.Client, 10)
	for _, f := range []string{"Ärzte.DAT", "日本.DAT", "100%.DAT"} {
		b.Publish(t, contract.RoutingKeyPlacementExported, placementWithFile(7, f))
	}
	for _, want := range []string{"placement-esr/7/%C3%84rzte.DAT", "placement-esr/7/%E6%97%A5%E6%9C%AC.DAT", "placement-esr/7/100%25.DAT"} {
		run := tm.Client.GetWorkflow(context.Background(), want, "")
		require.Eventually(t, func() bool {
			_, err := tm.Client.DescribeWorkflowExecution(context.Background(), want, "")
			return err == nil
		}, 20*time.Second, 100*time.Millisecond, "no workflow %s; consumer log:\n%s", want, strings.Join(c.logs.Lines(""), "\n"))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		require.NoError(t, run.Get(ctx, nil))
		cancel()
	}
	require.Equal(t, 1, s.Store.ExportedCount(7, "Ärzte.DAT"), "the record keeps its real filename in TCS")
	require.Equal(t, 1, s.Store.ExportedCount(7, "日本.DAT"))
	require.Zero(t, testutilGauge(c.metrics.Held))
	require.Equal(t, 0, b.Depth(t, b.Topology.DLQ))
}

// Temporal refusing a start for the message itself (here an ID over a lowered server limit) is not
// an outage: the message goes to the DLQ with the server's reason, and Temporal is not reported down.
func TestStartRefusedByTemporalGoesToTheDLQWithTheServersReason(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	b := testenv.StartBroker(t, 0)
	tm := testenv.StartTemporalWithArgs(t, "--dynamic-config-value", "limit.maxIDLength=100")
	c := startConsumer(t, b, tm.Client, 10)
	long := strings.Repeat("L", 150) + ".DAT" // under our own 1,000-byte check, over this server's 100
	b.Publish(t, contract.RoutingKeyPlacementExported, placementWithFile(8, long))
	b.Publish(t, contract.RoutingKeyPlacementExported, placementWithFile(9, "SHORT.DAT"))
	waitCount(t, tm.Client, "", 1, 20*time.Second)
	require.Eventually(t, func() bool { return b.Depth(t, b.Topology.DLQ) == 1 }, 20*time.Second, 100*time.Millisecond,
		"consumer log:\n%s", strings.Join(c.logs.Lines(""), "\n"))
	d := b.Drain(t, b.Topology.DLQ)[0]
	reason, _ := d.Headers[intake.HeaderError].(string)
	require.Contains(t, reason, "Temporal refused")
	require.Contains(t, strings.ToLower(reason), "length", "the server's own reason: %s", reason)
	require.Equal(t, 1.0, testutilCounter(c.metrics.Messages.WithLabelValues(b.Topology.PlacementQueue, intake.OutcomeRefused)))
	require.Equal(t, 1.0, testutilGauge(c.metrics.TemporalUp), "a refusal is not an outage")
	require.Zero(t, testutilCounter(c.metrics.StartRetries.WithLabelValues(b.Topology.PlacementQueue)))
	require.NotEmpty(t, c.logs.Lines(`"level":"ERROR"`, "Temporal refused"))
}

// A Temporal without the writeback search attributes refuses every start (invalid argument naming
// the attribute). That is a fault of the deployment, not of any message (a message is never
// dead-lettered for an infrastructure fault: docs/operating.md, What happens on each fault): the
// delivery is held, the log names the attribute, and once an operator registers the attributes
// the record starts. Nothing reaches the DLQ.
func TestUnregisteredSearchAttributeIsHeldNotDeadLettered(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	b := testenv.StartBroker(t, 0)
	tm := testenv.StartBareTemporal(t)
	c := startConsumer(t, b, tm.Client, 10)
	b.Publish(t, contract.RoutingKeyPlacementExported, placementWithFile(10, "NOSA.DAT"))
	require.Eventually(t, func() bool {
		return testutilCounter(c.metrics.StartRetries.WithLabelValues(b.Topology.PlacementQueue)) >= 2
	}, 30*time.Second, 100*time.Millisecond, "consumer log:\n%s", strings.Join(c.logs.Lines(""), "\n"))
	require.Equal(t, 0, b.Depth(t, b.Topology.DLQ), "a missing search attribute is not the message's fault")
	require.Equal(t, 1.0, testutilGauge(c.metrics.Held))
	require.NotEmpty(t, c.logs.Lines("holding the delivery", "Writeback"), "the log names the search attribute")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sa := map[string]enums.IndexedValueType{}
	for _, k := range []string{"WritebackKind", "WritebackRecordId", "WritebackState", "WritebackFailure"} {
		sa[k] = enums.INDEXED_VALUE_TYPE_KEYWORD
	}
	_, err := tm.Client.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: "default", SearchAttributes: sa})
	require.NoError(t, err)
	waitCount(t, tm.Client, "", 1, 60*time.Second)
	require.Eventually(t, func() bool { return testutilGauge(c.metrics.Held) == 0 }, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, 0, b.Depth(t, b.Topology.DLQ))
	require.Equal(t, 0, b.Depth(t, b.Topology.PlacementQueue))
}
