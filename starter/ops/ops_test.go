package ops

import (
	"encoding/json"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/starter/intake"
)

func TestSelectionNamesExactlyOne(t *testing.T) {
	for _, c := range []struct {
		sel Selection
		ok  bool
	}{
		{Selection{WorkflowID: "w"}, true},
		{Selection{Query: "q"}, true},
		{Selection{All: true}, true},
		{Selection{Group: "tcs-404"}, true},
		{Selection{IDs: []string{"a"}}, true},
		{Selection{}, false},
		{Selection{All: true, Group: "tcs-404"}, false},
		{Selection{WorkflowID: "w", IDs: []string{"a"}}, false},
	} {
		err := c.sel.Validate()
		require.Equal(t, c.ok, err == nil, "%+v: %v", c.sel, err)
	}
}

// The plan signals each running dead letter once and names why it skips the rest.
func TestPlan(t *testing.T) {
	targets := []Target{
		{WorkflowID: "a", Running: true, State: contract.StateDeadLettered},
		{WorkflowID: "b", Running: false, State: contract.StateCompleted},
		{WorkflowID: "c", Running: true, State: contract.StateUpdating},
		{WorkflowID: "a", Running: true, State: contract.StateDeadLettered},
		{WorkflowID: "d", Running: true, State: contract.StateDeadLettered},
	}
	retries := func(id string) (int, bool) { return map[string]int{"d": 5}[id], true }
	require.Equal(t, []Step{{WorkflowID: "a"}, {WorkflowID: "b", Skip: "closed"},
		{WorkflowID: "c", Skip: "state Updating, not DeadLettered"},
		{WorkflowID: "d", Skip: "already retried 5 times (--max-retries 5)"}},
		Plan(targets, contract.SignalRetry, 5, retries))
	require.Equal(t, "", Plan(targets, contract.SignalAbandon, 5, retries)[3].Skip, "abandon has no retry guard")
	require.Equal(t, "", Plan(targets, contract.SignalRetry, 0, retries)[3].Skip, "--max-retries 0: no guard")
}

// A correction is accepted only as a valid message of the same record; the error says which it names.
func TestCorrectedRecord(t *testing.T) {
	p := contract.PlacementExported{PlacementID: 71, PositionNumber: 1, PositionID: 2, Filename: "REJECTED.DAT"}
	p.ExportedAt = p.ExportedAt.AddDate(2021, 0, 0)
	body := func(m any) []byte {
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	got, err := CorrectedRecord(p.WorkflowID(), append(body(p), '\n'))
	require.NoError(t, err)
	require.Equal(t, string(body(p)), string(got), "trimmed, otherwise as given")

	other := p
	other.PlacementID = 72
	_, err = CorrectedRecord(p.WorkflowID(), body(other))
	require.ErrorContains(t, err, "names placement 72")
	_, err = CorrectedRecord(p.WorkflowID(), []byte(`{"placementId":71,"filename":"REJECTED.DAT"}`))
	require.ErrorContains(t, err, "not a valid placement message")
	_, err = CorrectedRecord("scan/3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", body(p))
	require.ErrorContains(t, err, "not a valid scan message")
	_, err = CorrectedRecord("job/1", body(p))
	require.ErrorContains(t, err, "not a writeback workflow ID")
}

func TestGroupQueriesAndCommands(t *testing.T) {
	g := Group{Kind: "placement", Name: "tcs-404"}
	require.Equal(t, `WritebackState="DeadLettered" AND WritebackKind="placement" AND ExecutionStatus="Running" AND WritebackFailure="tcs-404"`, g.Query())
	require.Equal(t, "bin/starter retry --group tcs-404 --reason '…'", g.RetryCommand("bin/starter"))
	none := Group{Kind: "scan", Name: NoGroup}
	require.Contains(t, none.Query(), "WritebackFailure IS NULL")
	require.True(t, strings.HasPrefix(none.RetryCommand("starter"), "starter retry --query '"))
	require.Contains(t, g.UILink("http://ui:8233/", "prod ns"), "http://ui:8233/namespaces/prod%20ns/workflows?query=")
}

// redrive finds the original routing key and the reason, whoever dead-lettered the message.
func TestRoutingKeyAndReasonOfADeadLetter(t *testing.T) {
	poison := amqp.Delivery{Headers: amqp.Table{intake.HeaderRoutingKey: "scan.completed", intake.HeaderError: "field \"scanId\" is missing"}}
	require.Equal(t, "scan.completed", RoutingKeyOf(poison))
	require.Equal(t, "field \"scanId\" is missing", ReasonOf(poison))
	limit := amqp.Delivery{Headers: amqp.Table{"x-death": []any{amqp.Table{"reason": "delivery_limit", "queue": "writeback.placement.exported",
		"routing-keys": []any{"placement.exported"}}}}}
	require.Equal(t, "placement.exported", RoutingKeyOf(limit))
	require.Equal(t, "dead-lettered by the broker (delivery_limit) from queue writeback.placement.exported", ReasonOf(limit))
	require.Equal(t, "", RoutingKeyOf(amqp.Delivery{}))
	require.Equal(t, "unknown", ReasonOf(amqp.Delivery{}))
}
