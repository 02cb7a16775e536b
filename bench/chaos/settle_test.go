package chaos

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A run counts its own records only. The namespace of a deployment holds others (the records of its
// upgrade checks, an earlier run): with them counted, a run declared itself settled while 22 of
// its records were still being written, then called them lost.
func TestSettleCountsOnlyTheRunsOwnRecords(t *testing.T) {
	own := ownOf([]record{{id: "placement-1"}, {id: "placement-2"}, {id: "scan-3"}})
	listed := []string{"demo-1", "demo-2", "demo-3", "demo-4", "placement-1", "placement-1", "scan-3"}
	require.Equal(t, 2, own.settled(listed), "foreign records and a second run of one record do not count")
	require.Equal(t, []string{"placement-2"}, own.unsettled(listed))
}
