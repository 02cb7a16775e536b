package ops

import (
	"github.com/tis-writeback/writeback/contract"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// stateOf reads WritebackState from raw search attributes ("" if unset).
func stateOf(sa *commonpb.SearchAttributes) string { return keyword(sa, contract.StateKey.GetName()) }

// keyword reads a Keyword search attribute ("" if unset).
func keyword(sa *commonpb.SearchAttributes, key string) string {
	p, ok := sa.GetIndexedFields()[key]
	if !ok {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}
