package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
)

// recordWorkflows counts the records' workflows only (a worker starts the TCS control too).
var recordWorkflows = fmt.Sprintf(`WorkflowType IN ("%s", "%s")`, contract.PlacementWorkflowType, contract.ScanWorkflowType)

func searchAttr(t *testing.T, tm *testenv.Temporal, id, key string) string {
	t.Helper()
	desc, err := tm.Client.DescribeWorkflowExecution(context.Background(), id, "")
	require.NoError(t, err)
	var v string
	if p := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[key]; p != nil {
		require.NoError(t, json.Unmarshal(p.GetData(), &v))
	}
	return v
}

// A poison message that still names its record becomes a dead letter of that record (marked in
// TCS, CRITICAL, DeadLettered with the poison reason and group) besides its DLQ copy; the corrected
// message arriving on the queue retries it with the new content; a byte-identical duplicate of the
// correction writes nothing more. A message that names no record stays in the DLQ alone.
func TestPoisonThatNamesItsRecordThenItsCorrection(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	s := testenv.StartSim(t, 1000)
	w := testenv.StartWorker(t, tm, s.URL(), testenv.WorkerOptions{})
	c := startConsumer(t, b, tm.Client, 10)
	st := &stack{tm: tm, sim: s}

	bad := []byte(`{"placementId":42,"positionNumber":1,"positionId":2,"filename":"POISON.DAT","exportedAt":"yesterday"}`)
	b.Publish(t, contract.RoutingKeyPlacementExported, bad)
	b.Publish(t, contract.RoutingKeyScanCompleted, []byte(`{"scanId":"3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11","result":"DIRTY","fileName":"a.pdf","completedAt":"2026-11-22T09:15:00Z"}`))
	b.Publish(t, contract.RoutingKeyPlacementExported, []byte(`{"positionNumber":1}`)) // names no record

	id := contract.PlacementWorkflowID(42, "POISON.DAT")
	status := st.waitState(t, id, contract.StateDeadLettered, 30*time.Second)
	require.Contains(t, status.LastError, `"exportedAt" must be an RFC 3339 time`)
	require.Equal(t, 0, status.Attempts)
	require.Eventually(t, func() bool { return searchAttr(t, tm, id, "WritebackFailure") == "poison-exportedAt" }, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, 1, s.Store.FailedCount(42, "POISON.DAT"), "marked errored in TCS")
	require.Equal(t, 0, s.Store.ExportedCount(42, "POISON.DAT"), "never written")
	require.Len(t, w.Logs.Lines(`"level":"CRITICAL"`, id), 1)
	scanID := "scan/3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11"
	st.waitState(t, scanID, contract.StateDeadLettered, 30*time.Second)
	require.Equal(t, "poison-result", searchAttr(t, tm, scanID, "WritebackFailure"))
	sc, ok := s.Store.ScanRecord("3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11")
	require.True(t, ok)
	require.Equal(t, "ERRORED", sc.Status)

	require.Eventually(t, func() bool { return b.Depth(t, b.Topology.DLQ) == 3 }, 20*time.Second, 100*time.Millisecond,
		"every poison message is in the DLQ too")
	require.Equal(t, 2, count(t, tm.Client, recordWorkflows), "the message that names no record starts nothing")

	// The producer sends the corrected message: the parked dead letter retries with it.
	fixed := []byte(`{"placementId":42,"positionNumber":1,"positionId":2,"filename":"POISON.DAT","exportedAt":"2021-07-28T13:10:00Z"}`)
	b.Publish(t, contract.RoutingKeyPlacementExported, fixed)
	done := st.waitState(t, id, contract.StateCompleted, 30*time.Second)
	require.Equal(t, 1, done.Retries)
	require.Equal(t, 1, s.Store.ExportedCount(42, "POISON.DAT"))
	// The same corrected message again (a redelivery): no second write, no new dead-lettering.
	b.Publish(t, contract.RoutingKeyPlacementExported, fixed)
	b.Publish(t, contract.RoutingKeyPlacementExported, bad)
	time.Sleep(2 * time.Second)
	require.Equal(t, 1, s.Store.ExportedCount(42, "POISON.DAT"))
	require.Len(t, w.Logs.Lines(`"level":"CRITICAL"`, id), 1)
	require.Equal(t, 2, count(t, tm.Client, recordWorkflows))
	_ = c
}

// A byte-identical duplicate of a message whose record is parked as a dead letter is not a
// correction: no second write, no second dead-lettering or CRITICAL line.
func TestDuplicateOfADeadLetteredRecordChangesNothing(t *testing.T) {
	t.Parallel()
	b, tm := intakeStack(t, 0)
	s := testenv.StartSim(t, 10) // placement 500 is unknown: 404
	w := testenv.StartWorker(t, tm, s.URL(), testenv.WorkerOptions{})
	startConsumer(t, b, tm.Client, 10)
	st := &stack{tm: tm, sim: s}
	body := placementBody(500, "UNKNOWN.DAT")
	b.Publish(t, contract.RoutingKeyPlacementExported, body)
	id := contract.PlacementWorkflowID(500, "UNKNOWN.DAT")
	st.waitState(t, id, contract.StateDeadLettered, 30*time.Second)
	require.Equal(t, "tcs-404", searchAttr(t, tm, id, "WritebackFailure"))
	for i := 0; i < 3; i++ {
		b.Publish(t, contract.RoutingKeyPlacementExported, body)
	}
	time.Sleep(3 * time.Second)
	q := st.query(t, id)
	require.Equal(t, contract.StateDeadLettered, q.State)
	require.Equal(t, 0, q.Retries)
	require.Len(t, w.Logs.Lines(`"level":"CRITICAL"`, id), 1)
	require.Equal(t, 0, s.Store.ExportedCount(500, "UNKNOWN.DAT"))
}
