package ops

import (
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/tis-writeback/writeback/workflows"
)

// stateOf reads WritebackState from raw search attributes ("" if unset).
func stateOf(sa *commonpb.SearchAttributes) string {
	p, ok := sa.GetIndexedFields()[workflows.StateKey.GetName()]
	if !ok {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}
