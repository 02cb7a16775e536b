package messages

import (
	"fmt"
	"strconv"
)

// Workflow IDs are part of the contract (SPEC section 3): they make a redelivered or duplicate
// message land on the workflow that already exists.

// PlacementWorkflowID is the workflow ID of one exported placement.
func PlacementWorkflowID(placementID int64, filename string) string {
	return fmt.Sprintf("placement-esr/%d/%s", placementID, filename)
}

// ScanWorkflowID is the workflow ID of one finished scan; scanID is lower-cased by DecodeScan.
func ScanWorkflowID(scanID string) string { return "scan/" + scanID }

// WorkflowID of this placement message.
func (m PlacementExported) WorkflowID() string { return PlacementWorkflowID(m.PlacementID, m.Filename) }

// RecordID is the value of the WritebackRecordId search attribute.
func (m PlacementExported) RecordID() string { return strconv.FormatInt(m.PlacementID, 10) }

// WorkflowID of this scan message.
func (m ScanCompleted) WorkflowID() string { return ScanWorkflowID(m.ScanID) }

// RecordID is the value of the WritebackRecordId search attribute.
func (m ScanCompleted) RecordID() string { return m.ScanID }

// Summary is the one line the Temporal UI shows for the workflow.
func (m PlacementExported) Summary() string {
	return fmt.Sprintf("placement %d → TCS (%s)", m.PlacementID, shortName(m.Filename))
}

// Summary is the one line the Temporal UI shows for the workflow.
func (m ScanCompleted) Summary() string {
	return fmt.Sprintf("scan %s → TCS (%s, %s)", m.ScanID, m.Result, shortName(m.FileName))
}

func shortName(s string) string {
	r := []rune(s)
	if len(r) <= 40 {
		return s
	}
	return string(r[:18]) + "…" + string(r[len(r)-18:])
}
