package workflows

import (
	"encoding/json"
	"fmt"

	"github.com/tis-writeback/writeback/contract"
)

// record is what differs between the two kinds beyond their names (those are in contract.Kinds).
type record interface {
	kind() contract.Kind
	recordID() string
	summary() string
	input() any
	deadLetter(dl contract.DeadLetter) contract.DeadLetter
	// corrected validates a corrected message of this same record (a retry's record).
	corrected(raw json.RawMessage) (record, error)
}

type placementRecord struct{ msg contract.PlacementExported }

func (r placementRecord) kind() contract.Kind { return contract.KindPlacement }
func (r placementRecord) recordID() string    { return r.msg.RecordID() }
func (r placementRecord) summary() string     { return r.msg.Summary() }
func (r placementRecord) input() any          { return r.msg }
func (r placementRecord) deadLetter(dl contract.DeadLetter) contract.DeadLetter {
	dl.Placement = &contract.PlacementRef{PlacementID: r.msg.PlacementID, Filename: r.msg.Filename}
	return dl
}
func (r placementRecord) corrected(raw json.RawMessage) (record, error) {
	m, err := contract.DecodePlacement(raw)
	if err != nil {
		return nil, err
	}
	if m.PlacementID != r.msg.PlacementID || m.Filename != r.msg.Filename {
		return nil, fmt.Errorf("it names placement %d file %q, not this record (placement %d file %q)",
			m.PlacementID, m.Filename, r.msg.PlacementID, r.msg.Filename)
	}
	return placementRecord{msg: m}, nil
}

type scanRecord struct{ msg contract.ScanCompleted }

func (r scanRecord) kind() contract.Kind { return contract.KindScan }
func (r scanRecord) recordID() string    { return r.msg.RecordID() }
func (r scanRecord) summary() string     { return r.msg.Summary() }
func (r scanRecord) input() any          { return r.msg }
func (r scanRecord) deadLetter(dl contract.DeadLetter) contract.DeadLetter {
	dl.Scan = &contract.ScanRef{ScanID: r.msg.ScanID, Result: r.msg.Result}
	return dl
}
func (r scanRecord) corrected(raw json.RawMessage) (record, error) {
	m, err := contract.DecodeScan(raw)
	if err != nil {
		return nil, err
	}
	if m.ScanID != r.msg.ScanID {
		return nil, fmt.Errorf("it names scan %s, not this record (scan %s)", m.ScanID, r.msg.ScanID)
	}
	return scanRecord{msg: m}, nil
}

// sameMessage reports whether two records carry the same message. (json.Marshal is deterministic;
// the checker sees reflection deep inside it.)
//
//workflowcheck:ignore
func sameMessage(a, b record) bool {
	x, _ := json.Marshal(a.input())
	y, _ := json.Marshal(b.input())
	return string(x) == string(y)
}
