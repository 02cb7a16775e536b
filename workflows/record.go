package workflows

import (
	"encoding/json"

	"github.com/tis-writeback/writeback/contract"
)

// corrected reads a retry's corrected message: a valid message of the same record as rec.
func corrected(rec contract.Message, raw json.RawMessage) (contract.Message, error) {
	next, _, err := rec.Kind().Parse(raw)
	if err != nil {
		return nil, err
	}
	if err := rec.SameRecord(next); err != nil {
		return nil, err
	}
	return next, nil
}

// sameMessage reports whether two records carry the same message. (json.Marshal is deterministic;
// the checker sees reflection deep inside it.)
//
//workflowcheck:ignore
func sameMessage(a, b contract.Message) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
