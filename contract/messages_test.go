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

// The kind table parses a body once: a valid message, or why it is poison and whether it still names
// its record; the reason is the first field at fault in the contract's order.
func TestKindParse(t *testing.T) {
	for _, c := range []struct {
		kind   contract.Kind
		body   string
		named  bool
		reason string // "" when valid
		id     string
	}{
		{contract.KindPlacement, goodPlacement, true, "", "placement-esr/1708036/DE_SEV_APP_20210728_00003779.DAT"},
		{contract.KindScan, goodScan, true, "", "scan/3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11"},
		{contract.KindPlacement, `{"placementId": 7, "filename": "A.DAT", "positionNumber": "x"}`, true, "positionNumber", "placement-esr/7/A.DAT"},
		{contract.KindPlacement, `{"placementId": 0, "filename": "A.DAT", "positionNumber": "x"}`, false, "placementId", ""},
		{contract.KindPlacement, `{"placementId": 7, "positionNumber": 1, "positionId": 1, "exportedAt": "2021-07-28T13:10:00Z"}`, false, "filename", ""},
		{contract.KindPlacement, `{"placementId": 7, "positionNumber": 1, "positionId": 1, "filename": "` + strings.Repeat("é", 200) +
			`", "exportedAt": "2021-07-28T13:10:00Z"}`, false, "over Temporal's limit", ""},
		{contract.KindScan, `{"scanId": "3F1C2A9E-0B7D-4C55-9A1E-6D2F0E8B4C11", "result": "DIRTY"}`, true, "result", "scan/3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11"},
		{contract.KindScan, `{"scanId": "nope", "result": "CLEAN"}`, false, "not a UUID", ""},
		{contract.KindScan, `not json`, false, "JSON", ""},
		{contract.Kind("letter"), goodScan, false, "unknown kind", ""},
	} {
		m, named, err := c.kind.Parse([]byte(c.body))
		require.Equal(t, c.named, named, c.body)
		if c.reason == "" {
			require.NoError(t, err)
		} else {
			require.True(t, contract.IsInvalid(err), c.body)
			require.Contains(t, err.Error(), c.reason)
		}
		if c.id != "" {
			require.Equal(t, c.id, m.WorkflowID())
			require.Equal(t, c.kind, m.Kind())
		}
	}
}

func TestSameRecordAndDeadLetterRef(t *testing.T) {
	p, _, err := contract.KindPlacement.Parse([]byte(goodPlacement))
	require.NoError(t, err)
	s, _, err := contract.KindScan.Parse([]byte(goodScan))
	require.NoError(t, err)
	other := p.(contract.PlacementExported)
	other.PositionID++
	require.NoError(t, p.SameRecord(other), "a correction of another field is the same record")
	other.Filename = "B.DAT"
	require.ErrorContains(t, p.SameRecord(other), `it names placement 1708036 file "B.DAT", not this record`)
	require.ErrorContains(t, p.SameRecord(s), "not a placement's")
	require.ErrorContains(t, s.SameRecord(p), "not a scan's")

	dl := s.DeadLetterRef(contract.DeadLetter{Kind: "scan"})
	require.Equal(t, &contract.ScanRef{ScanID: "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "SANITISED"}, dl.Scan)
	dl = p.DeadLetterRef(contract.DeadLetter{Kind: "placement"})
	require.Equal(t, &contract.PlacementRef{PlacementID: 1708036, Filename: "DE_SEV_APP_20210728_00003779.DAT"}, dl.Placement)

	for id, want := range map[string]contract.Kind{"scan/x": contract.KindScan, p.WorkflowID(): contract.KindPlacement} {
		k, err := contract.KindOfWorkflowID(id)
		require.NoError(t, err)
		require.Equal(t, want, k)
	}
	_, err = contract.KindOfWorkflowID("job/1")
	require.ErrorContains(t, err, "not a writeback workflow ID")
}
