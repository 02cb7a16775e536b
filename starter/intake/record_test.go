package intake

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"

	"github.com/tis-writeback/writeback/contract"
)

// A delivery is parsed once: a valid message becomes its Record with the body kept (offered as a
// correction); a poison one that names its record becomes that record's dead letter; one that does
// not name it is only the reason.
func TestParse(t *testing.T) {
	valid := []byte(`{"placementId":7,"positionNumber":1,"positionId":2,"filename":"A.DAT","exportedAt":"2021-07-28T13:10:00Z"}`)
	rec, err := Parse(contract.KindPlacement, valid)
	require.NoError(t, err)
	require.Equal(t, "placement-esr/7/A.DAT", rec.WorkflowID)
	require.Equal(t, contract.PlacementWorkflowType, rec.WorkflowType)
	require.Equal(t, "7", rec.RecordID)
	require.Equal(t, valid, rec.Body)
	require.Nil(t, rec.Carry)

	rec, err = Parse(contract.KindPlacement, []byte(`{"placementId":7,"positionNumber":1,"positionId":2,"filename":"A.DAT","exportedAt":"yesterday"}`))
	require.True(t, contract.IsInvalid(err))
	require.Equal(t, "placement-esr/7/A.DAT", rec.WorkflowID, "it names its record")
	require.Equal(t, "poison-exportedAt", rec.Carry.PoisonGroup)
	require.Contains(t, rec.Carry.Poison, "exportedAt")
	require.Nil(t, rec.Body, "a poison body is no correction")

	rec, err = Parse(contract.KindScan, []byte(`{"scanId":"nope"}`))
	require.True(t, contract.IsInvalid(err))
	require.Equal(t, Record{}, rec, "no record named")

	_, err = Decode(contract.KindScan, []byte(`{"placementId":7}`))
	require.ErrorContains(t, err, "scanId")
}

func TestRefusalIsTheMessagesOwnFault(t *testing.T) {
	reason, refused := Refusal(serviceerror.NewInvalidArgument("WorkflowId length exceeds limit."))
	require.True(t, refused)
	require.Equal(t, "WorkflowId length exceeds limit.", reason)
	_, refused = Refusal(serviceerror.NewInvalidArgument("search attribute WritebackKind is not defined"))
	require.False(t, refused, "the deployment's fault: held, not dead-lettered")
	_, refused = Refusal(serviceerror.NewUnavailable("down"))
	require.False(t, refused)
}

func TestRedrivenOrigin(t *testing.T) {
	recovery, origin := redriven(amqp.Table{HeaderRedrivenAt: "2026-12-06T10:00:00Z", HeaderRedrivenBy: []byte("ops"), HeaderRedriveWhy: "TCS fixed"})
	require.True(t, recovery)
	require.Equal(t, "redriven from the DLQ at 2026-12-06T10:00:00Z by ops: TCS fixed", origin)
	recovery, _ = redriven(amqp.Table{})
	require.False(t, recovery)
}
