package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/logging"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/starter/intake"
)

// consumer runs the intake code in this process against b and Temporal at address.
type consumer struct {
	consumer *intake.Consumer
	logs     *testenv.Logs
	metrics  *intake.Metrics
	stop     func()
}

func startConsumer(t *testing.T, b *testenv.Broker, tc client.Client, prefetch int) *consumer {
	logs := &testenv.Logs{}
	log := logging.New(logs, slog.LevelInfo)
	conn, err := broker.Dial(broker.ConnConfig{URL: b.URL, RetryInterval: 500 * time.Millisecond, Name: "writeback-test-consumer"}, log, 3, nil)
	require.NoError(t, err)
	pub, err := broker.NewPublisher(conn)
	require.NoError(t, err)
	m := intake.NewMetrics(prometheus.NewRegistry(), []string{b.Topology.PlacementQueue, b.Topology.ScanQueue}, b.Topology.DLQ)
	dial := func() (*broker.PlainConn, error) {
		return broker.DialPlain(broker.ConnConfig{URL: b.URL, Name: "writeback-test-consumer"})
	}
	c := &intake.Consumer{Conn: conn, Dial: dial, Topology: b.Topology, Publisher: pub, Starter: intake.TemporalStarter{Client: tc},
		Log: log, Metrics: m, Prefetch: prefetch, RetryMax: 2 * time.Second, DrainTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
			_ = pub.Close()
			_ = conn.Close()
		})
	}
	t.Cleanup(stop)
	return &consumer{consumer: c, logs: logs, metrics: m, stop: stop}
}

// count counts workflows; a transient RPC error (a busy dev server, one restarting) is retried
// for up to 15 s before it fails the test, so polling loops never flake on one bad answer.
func count(t *testing.T, c client.Client, query string) int {
	t.Helper()
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var resp *workflowservice.CountWorkflowExecutionsResponse
		resp, err = c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		cancel()
		if err == nil {
			return int(resp.GetCount())
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	require.NoError(t, err, "count %q", query)
	return 0
}

func waitCount(t *testing.T, c client.Client, query string, want int, within time.Duration) {
	var got int
	require.Eventually(t, func() bool { got = count(t, c, query); return got == want }, within, 200*time.Millisecond,
		"want %d workflows for %q", want, query)
	// Stays there: nothing extra turns up a moment later.
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, want, count(t, c, query), query)
}

func placementBody(id int64, file string) []byte {
	b, _ := json.Marshal(placement(id, file))
	return b
}

func intakeStack(t *testing.T, deliveryLimit int) (*testenv.Broker, *testenv.Temporal) {
	if testing.Short() {
		t.Skip("integration test: needs RabbitMQ and the dev server")
	}
	return testenv.StartBroker(t, deliveryLimit), testenv.StartTemporal(t)
}

func TestFiveHundredMessagesFiveHundredWorkflows(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	startConsumer(t, b, tm.Client, 100)
	start := time.Now()
	for i := int64(1); i <= 400; i++ {
		b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(i, "FIVE.DAT"))
	}
	for i := 0; i < 100; i++ {
		sc := contract.ScanCompleted{ScanID: fmt.Sprintf("3f1c2a9e-0b7d-4c55-9a1e-%012d", i), Result: "CLEAN", FileName: "f.pdf",
			CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
		body, _ := json.Marshal(sc)
		b.Publish(t, contract.RoutingKeyScanCompleted, body)
	}
	waitCount(t, tm.Client, "", 500, 2*time.Minute)
	t.Logf("MEASURED: 500 messages → 500 workflow starts in %.1f s (in-memory dev server, no worker)", time.Since(start).Seconds())
	require.Equal(t, 400, count(t, tm.Client, `WritebackKind="placement" AND WritebackState="Updating"`))
	require.Equal(t, 100, count(t, tm.Client, `WritebackKind="scan"`))
	require.Eventually(t, func() bool {
		return b.Depth(t, b.Topology.PlacementQueue) == 0 && b.Depth(t, b.Topology.ScanQueue) == 0
	}, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, 0, b.Depth(t, b.Topology.DLQ))
}

func TestDuplicatesMakeOneWorkflowOneRow(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	s := testenv.StartSim(t, 1000)
	testenv.StartWorker(t, tm, s.URL(), testenv.WorkerOptions{})
	c := startConsumer(t, b, tm.Client, 10)
	body := placementBody(42, "DUP.DAT")
	b.Publish(t, contract.RoutingKeyPlacementExported, body)
	b.Publish(t, contract.RoutingKeyPlacementExported, body)
	id := contract.PlacementWorkflowID(42, "DUP.DAT")
	run := tm.Client.GetWorkflow(context.Background(), id, "")
	require.Eventually(t, func() bool {
		_, err := tm.Client.DescribeWorkflowExecution(context.Background(), id, "")
		return err == nil
	}, 20*time.Second, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, run.Get(ctx, nil))
	// Once more after the workflow completed: acked, no second run.
	b.Publish(t, contract.RoutingKeyPlacementExported, body)
	require.Eventually(t, func() bool {
		return testutilCounter(c.metrics.Messages.WithLabelValues(b.Topology.PlacementQueue, intake.OutcomeDuplicate)) == 2
	}, 20*time.Second, 100*time.Millisecond, "started %v duplicate %v\n%s",
		testutilCounter(c.metrics.Messages.WithLabelValues(b.Topology.PlacementQueue, intake.OutcomeStarted)),
		testutilCounter(c.metrics.Messages.WithLabelValues(b.Topology.PlacementQueue, intake.OutcomeDuplicate)),
		strings.Join(c.logs.Lines(""), "\n"))
	require.Equal(t, 1, count(t, tm.Client, fmt.Sprintf(`WorkflowId=%q`, id)))
	require.Equal(t, 1, s.Store.ExportedCount(42, "DUP.DAT"))
	require.Equal(t, 0, b.Depth(t, b.Topology.PlacementQueue))
}

func TestPoisonMessagesGoToTheDLQWithTheirReason(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	startConsumer(t, b, tm.Client, 10)
	huge := `{"placementId":1,"positionNumber":1,"positionId":1,"filename":"` + strings.Repeat("x", 70000) + `","exportedAt":"2021-07-28T13:10:00Z"}`
	poison := []struct {
		key, body, reason string
	}{
		{contract.RoutingKeyPlacementExported, `not json`, "not a JSON object"},
		{contract.RoutingKeyPlacementExported, `{"positionNumber":1,"positionId":1,"filename":"A.DAT","exportedAt":"2021-07-28T13:10:00Z"}`, `"placementId" is missing`},
		{contract.RoutingKeyPlacementExported, `{"placementId":"12","positionNumber":1,"positionId":1,"filename":"A.DAT","exportedAt":"2021-07-28T13:10:00Z"}`, `"placementId" must be an integer`},
		{contract.RoutingKeyPlacementExported, `{"placementId":0,"positionNumber":1,"positionId":1,"filename":"A.DAT","exportedAt":"2021-07-28T13:10:00Z"}`, "from 1 to 2^63-1"},
		{contract.RoutingKeyPlacementExported, `{"placementId":1,"positionNumber":1,"positionId":1,"filename":"a/b.DAT","exportedAt":"2021-07-28T13:10:00Z"}`, `must not contain "/"`},
		{contract.RoutingKeyPlacementExported, `{"placementId":1,"positionNumber":1,"positionId":1,"filename":"A.DAT","exportedAt":"yesterday"}`, "RFC 3339"},
		{contract.RoutingKeyPlacementExported, huge, "more than the limit of 65536"},
		{contract.RoutingKeyScanCompleted, `{"scanId":"not-a-uuid","result":"CLEAN","fileName":"a.pdf","completedAt":"2026-11-22T09:15:00Z"}`, "is not a UUID"},
		{contract.RoutingKeyScanCompleted, `{"scanId":"3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11","result":"DIRTY","fileName":"a.pdf","completedAt":"2026-11-22T09:15:00Z"}`, "is not one of CLEAN, SANITISED, BLOCKED"},
		{contract.RoutingKeyScanCompleted, `[]`, "not a JSON object"},
	}
	for _, p := range poison {
		b.Publish(t, p.key, []byte(p.body))
	}
	// The consumer keeps consuming: a valid message after the poison is started.
	b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(7, "AFTER.DAT"))
	waitCount(t, tm.Client, fmt.Sprintf("WorkflowId=%q", contract.PlacementWorkflowID(7, "AFTER.DAT")), 1, 20*time.Second)
	// Two of them still name their record (placement 1 "A.DAT" with a bad time, a scan with a bad
	// result): those also became dead letters of their records, the rest started nothing.
	waitCount(t, tm.Client, "", 3, 20*time.Second)

	var got []string
	require.Eventually(t, func() bool { return b.Depth(t, b.Topology.DLQ) == len(poison) }, 20*time.Second, 100*time.Millisecond)
	for _, d := range b.Drain(t, b.Topology.DLQ) {
		reason, _ := d.Headers[intake.HeaderError].(string)
		key, _ := d.Headers[intake.HeaderRoutingKey].(string)
		require.NotEmpty(t, reason)
		got = append(got, key+" | "+reason)
	}
	for _, p := range poison {
		found := false
		for _, g := range got {
			found = found || (strings.HasPrefix(g, p.key+" | ") && strings.Contains(g, p.reason))
		}
		require.True(t, found, "no DLQ message for %q with reason %q in\n%s", p.body[:min(60, len(p.body))], p.reason, strings.Join(got, "\n"))
	}
	require.Equal(t, 0, b.Depth(t, b.Topology.PlacementQueue))
	require.Equal(t, 0, b.Depth(t, b.Topology.ScanQueue))
}

func TestTemporalDownTwentySecondsLosesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	// A delivery limit of 3: had the consumer nacked (or dead-lettered) while Temporal was down,
	// messages would pile up in the DLQ at once.
	b := testenv.StartBroker(t, 3)
	tp := testenv.StartTemporalProcess(t)
	tc := tp.Client(t)
	c := startConsumer(t, b, tc, 20)
	for i := int64(1); i <= 10; i++ {
		b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(i, "BEFORE.DAT"))
	}
	waitCount(t, tc, "", 10, 30*time.Second)

	tp.Stop(t)
	for i := int64(1); i <= 100; i++ {
		b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(i, "DURING.DAT"))
	}
	time.Sleep(20 * time.Second)
	require.Equal(t, 0, b.Depth(t, b.Topology.DLQ), "nothing dead-lettered while Temporal is down")
	require.LessOrEqual(t, testutilGauge(c.metrics.InFlight), 20.0, "never more deliveries in flight than the prefetch")
	require.Greater(t, testutilGauge(c.metrics.Held), 0.0)
	tp.Start(t)
	back := time.Now()
	waitCount(t, tc, "", 110, 2*time.Minute)
	t.Logf("MEASURED: Temporal down 20 s with 100 messages arriving: all 100 started %.1f s after it came back", time.Since(back).Seconds())
	require.Equal(t, 0, b.Depth(t, b.Topology.DLQ))
	require.Equal(t, 0, b.Depth(t, b.Topology.PlacementQueue))
	require.Equal(t, 0.0, testutilCounter(c.metrics.Messages.WithLabelValues(b.Topology.PlacementQueue, intake.OutcomePoison)))
}

func TestConsumerRecoversFromClosedConnections(t *testing.T) {
	testenv.RabbitNode(t) // skips unless the broker is the run's own
	b, tm := intakeStack(t, 0)
	c := startConsumer(t, b, tm.Client, 10)
	b.Publish(t, contract.RoutingKeyPlacementExported, placementBody(1, "R1.DAT"))
	waitCount(t, tm.Client, "", 1, 20*time.Second)

	testenv.RabbitCtl(t, "close_all_connections", "writeback connection recovery test")
	// Publish through the test's own (recovering) connection until it takes.
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return b.Pub.Publish(ctx, b.Topology.Exchange, contract.RoutingKeyPlacementExported,
			amqpJSON(placementBody(2, "R2.DAT"))) == nil
	}, 30*time.Second, 500*time.Millisecond)
	waitCount(t, tm.Client, "", 2, 30*time.Second)
	require.NotEmpty(t, c.logs.Lines("RabbitMQ connection recovered"))
}

func TestFuzzSeedsNeverPanicThroughTheConsumer(t *testing.T) {
	t.Parallel()
	// The fuzz target lives in messages; this checks its corpus through Decode for both kinds.
	for _, body := range [][]byte{nil, []byte("{}"), []byte(`{"placementId":1e400}`), []byte("\xff\xfe")} {
		for _, k := range []contract.Kind{contract.KindPlacement, contract.KindScan, "other"} {
			_, err := intake.Decode(k, body)
			require.Error(t, err)
			require.True(t, contract.IsInvalid(err))
		}
	}
}
