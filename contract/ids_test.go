package contract_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
)

// docs/contract.md, Workflow IDs: bytes outside printable ASCII, and "%", are written as %XX
// (upper-case hex).
func TestPlacementWorkflowIDPercentEncodesTheFilename(t *testing.T) {
	cases := map[string]string{
		"Ärzte.DAT":          "placement-esr/7/%C3%84rzte.DAT",
		"100%.DAT":           "placement-esr/7/100%25.DAT",
		"tab\there.DAT":      "placement-esr/7/tab%09here.DAT",
		"space ok ~.DAT":     "placement-esr/7/space ok ~.DAT",
		"del\x7f.DAT":        "placement-esr/7/del%7F.DAT",
		"日本.DAT":             "placement-esr/7/%E6%97%A5%E6%9C%AC.DAT",
		"%C3%84rzte.DAT":     "placement-esr/7/%25C3%2584rzte.DAT", // never mistaken for an encoded Ä
		"DE_SEV_APP_001.DAT": "placement-esr/7/DE_SEV_APP_001.DAT",
	}
	for file, want := range cases {
		id := contract.PlacementWorkflowID(7, file)
		require.Equal(t, want, id, file)
		for i := 0; i < len(id); i++ {
			require.True(t, id[i] >= 0x20 && id[i] <= 0x7e, "byte %x of %q is not printable ASCII", id[i], id)
		}
		gotID, gotFile, err := contract.ParsePlacementWorkflowID(id)
		require.NoError(t, err, id)
		require.Equal(t, int64(7), gotID)
		require.Equal(t, file, gotFile)
	}
}

func TestParseWorkflowIDRejectsForeignIDs(t *testing.T) {
	for _, id := range []string{"placement-esr/x/A.DAT", "placement-esr/7/", "placement-esr/7/a%ZZ", "placement-esr/7/a%c3%84",
		"scan/1", "placement-esr/7/a/b"} {
		_, _, err := contract.ParsePlacementWorkflowID(id)
		require.Error(t, err, id)
	}
}

func TestDecodePlacementWithNonASCIIFilename(t *testing.T) {
	m, err := contract.DecodePlacement([]byte(`{"placementId":7,"positionNumber":1,"positionId":1,"filename":"Ärzte.DAT","exportedAt":"2021-07-28T13:10:00Z"}`))
	require.NoError(t, err)
	require.Equal(t, "Ärzte.DAT", m.Filename, "the record keeps its filename; only the ID is encoded")
	require.Equal(t, "placement-esr/7/%C3%84rzte.DAT", m.WorkflowID())
}

// 255 characters are allowed; encoded, 255 × "Ä" is 1,530 bytes of ID, over Temporal's 1,000.
func TestPlacementWhoseIDIsTooLongIsPoison(t *testing.T) {
	body := `{"placementId":7,"positionNumber":1,"positionId":1,"filename":"` + strings.Repeat("Ä", 255) + `","exportedAt":"2021-07-28T13:10:00Z"}`
	_, err := contract.DecodePlacement([]byte(body))
	require.Error(t, err)
	require.True(t, contract.IsInvalid(err))
	require.Contains(t, err.Error(), "workflow ID")
	require.Contains(t, err.Error(), "1000")
	// 255 ASCII characters fit.
	ok := `{"placementId":7,"positionNumber":1,"positionId":1,"filename":"` + strings.Repeat("a", 255) + `","exportedAt":"2021-07-28T13:10:00Z"}`
	_, err = contract.DecodePlacement([]byte(ok))
	require.NoError(t, err)
}

// A poison message that still names its record (docs/contract.md, Messages on RabbitMQ) is
// identified, with its group.
func TestIdentifyPoisonThatNamesItsRecord(t *testing.T) {
	body := []byte(`{"placementId":7,"positionNumber":1,"positionId":"x","filename":"A.DAT","exportedAt":"yesterday"}`)
	_, err := contract.DecodePlacement(body)
	var inv *contract.Invalid
	require.ErrorAs(t, err, &inv)
	require.Equal(t, "poison-positionId", inv.Group())
	m, ok := contract.IdentifyPlacement(body)
	require.True(t, ok)
	require.Equal(t, "placement-esr/7/A.DAT", m.WorkflowID())
	require.Equal(t, int64(1), m.PositionNumber)
	require.True(t, m.ExportedAt.IsZero())

	for _, b := range []string{`{"placementId":7}`, `{"filename":"A.DAT"}`, `{"placementId":0,"filename":"A.DAT"}`, `not json`,
		`{"placementId":7,"filename":"a/b"}`} {
		_, ok := contract.IdentifyPlacement([]byte(b))
		require.False(t, ok, b)
	}
	_, err = contract.DecodePlacement([]byte(`not json`))
	require.ErrorAs(t, err, &inv)
	require.Equal(t, "poison-body", inv.Group())

	sc, ok := contract.IdentifyScan([]byte(`{"scanId":"3F1C2A9E-0B7D-4C55-9A1E-6D2F0E8B4C11","result":"DIRTY"}`))
	require.True(t, ok)
	require.Equal(t, "scan/3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", sc.WorkflowID())
	require.Empty(t, sc.Result)
	_, ok = contract.IdentifyScan([]byte(`{"scanId":"nope","result":"CLEAN"}`))
	require.False(t, ok)
}
