package contract_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
)

const goodPlacement = `{"placementId": 1708036, "positionNumber": 25713154, "positionId": 6957985,
 "filename": "DE_SEV_APP_20210728_00003779.DAT", "exportedAt": "2021-07-28T13:10:00Z", "extra": [1,2]}`

const goodScan = `{"scanId": "3F1C2A9E-0B7D-4C55-9A1E-6D2F0E8B4C11", "result": "SANITISED",
 "fileName": "referral.pdf", "completedAt": "2026-11-22T09:15:00Z"}`

func TestDecodePlacement(t *testing.T) {
	m, err := contract.DecodePlacement([]byte(goodPlacement))
	require.NoError(t, err)
	require.Equal(t, int64(1708036), m.PlacementID)
	require.Equal(t, "placement-esr/1708036/DE_SEV_APP_20210728_00003779.DAT", m.WorkflowID())
	require.Equal(t, "1708036", m.RecordID())
	require.Equal(t, "placement 1708036 → TCS (DE_SEV_APP_20210728_00003779.DAT)", m.Summary())
	require.NoError(t, m.Validate())
}

func TestDecodeScanLowerCasesTheID(t *testing.T) {
	m, err := contract.DecodeScan([]byte(goodScan))
	require.NoError(t, err)
	require.Equal(t, "scan/3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", m.WorkflowID())
}

func TestPoisonReasons(t *testing.T) {
	cases := map[string]string{
		`{"placementId": 9223372036854775808, "positionNumber": 1, "positionId": 1, "filename": "A", "exportedAt": "2021-07-28T13:10:00Z"}`:              "1 to 2^63-1",
		`{"placementId": 1.5, "positionNumber": 1, "positionId": 1, "filename": "A", "exportedAt": "2021-07-28T13:10:00Z"}`:                              "integer",
		`{"placementId": -3, "positionNumber": 1, "positionId": 1, "filename": "A", "exportedAt": "2021-07-28T13:10:00Z"}`:                               "from 1",
		`{"placementId": 1, "positionNumber": 1, "positionId": 1, "filename": "", "exportedAt": "2021-07-28T13:10:00Z"}`:                                 "1 to 255 characters",
		`{"placementId": 1, "positionNumber": 1, "positionId": 1, "filename": "` + strings.Repeat("é", 256) + `", "exportedAt": "2021-07-28T13:10:00Z"}`: "1 to 255 characters",
		`{"placementId": 1, "positionNumber": 1, "positionId": 1, "filename": null, "exportedAt": "2021-07-28T13:10:00Z"}`:                               `"filename" is missing`,
		`{"placementId": 1, "positionNumber": 1, "positionId": 1, "filename": "A", "exportedAt": "2021-07-28"}`:                                          "RFC 3339",
		`{"placementId": 1} {"x": 2}`: "more than one JSON value",
		`null`:                        "null",
		"{\"placementId\": 1, \"filename\": \"\xff\"}": "UTF-8",
	}
	for body, want := range cases {
		_, err := contract.DecodePlacement([]byte(body))
		require.Error(t, err, body)
		require.True(t, contract.IsInvalid(err))
		require.Contains(t, err.Error(), want, body[:min(50, len(body))])
	}
	// 255 characters (not bytes) is the limit of the field; the workflow ID's 1,000 bytes bound
	// non-ASCII names further (each such byte is written as %XX): 160 "é" fit, 255 do not.
	for _, name := range []string{strings.Repeat("a", 255), strings.Repeat("é", 160)} {
		ok := `{"placementId": 1, "positionNumber": 1, "positionId": 1, "filename": "` + name + `", "exportedAt": "2021-07-28T13:10:00Z"}`
		_, err := contract.DecodePlacement([]byte(ok))
		require.NoError(t, err)
	}
}

// FuzzDecode: decoding never panics, and every rejection says why.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{goodPlacement, goodScan, `{}`, `[]`, `null`, `{"placementId":"1"}`, `{"placementId":1e400}`,
		`{"scanId":"3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11","result":"CLEAN","fileName":"a/b","completedAt":"x"}`, "\xff"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// An accepted placement has an ID that gRPC can carry and that parses back to it.
		if m, err := contract.DecodePlacement(body); err == nil {
			id := m.WorkflowID()
			if len(id) > contract.MaxWorkflowIDBytes {
				t.Fatalf("accepted a workflow ID of %d bytes", len(id))
			}
			for i := 0; i < len(id); i++ {
				if id[i] < 0x20 || id[i] > 0x7e {
					t.Fatalf("workflow ID %q holds byte %#x", id, id[i])
				}
			}
			pid, file, perr := contract.ParsePlacementWorkflowID(id)
			if perr != nil || pid != m.PlacementID || file != m.Filename {
				t.Fatalf("ID %q does not parse back: %v", id, perr)
			}
		}
		for _, decode := range []func([]byte) error{
			func(b []byte) error { _, err := contract.DecodePlacement(b); return err },
			func(b []byte) error { _, err := contract.DecodeScan(b); return err },
		} {
			err := decode(body)
			if err == nil {
				continue
			}
			var inv *contract.Invalid
			if !contract.IsInvalid(err) {
				t.Fatalf("rejection is not an *Invalid: %v", err)
			}
			_ = inv
			if strings.TrimSpace(strings.TrimPrefix(err.Error(), "invalid message:")) == "" {
				t.Fatalf("rejection without a reason for %q", body)
			}
		}
	})
}
