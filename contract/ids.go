package contract

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Workflow IDs are part of the contract (docs/contract.md, Workflow IDs): they make a redelivered
// or duplicate message land on the workflow that already exists.

// MaxWorkflowIDBytes is the longest workflow ID the Temporal server accepts by default
// (dynamic config limit.maxIDLength, counted in bytes).
const MaxWorkflowIDBytes = 1000

const placementIDPrefix = "placement-esr/"

// PlacementWorkflowID is the workflow ID of one exported placement. The filename is
// percent-encoded: the SDK sends the ID in a gRPC header, which carries only
// printable ASCII.
func PlacementWorkflowID(placementID int64, filename string) string {
	return placementIDPrefix + strconv.FormatInt(placementID, 10) + "/" + EscapeFilename(filename)
}

// EscapeFilename writes each byte outside printable ASCII (0x20-0x7E), and "%", as %XX.
func EscapeFilename(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// UnescapeFilename reverses EscapeFilename; it accepts only what EscapeFilename writes.
func UnescapeFilename(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("byte %#x is not printable ASCII", c)
		}
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
			return "", errors.New("a % is not followed by two upper-case hex digits")
		}
		v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

func isUpperHex(c byte) bool { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') }

// ParsePlacementWorkflowID splits a placement workflow ID into its placement ID and filename.
func ParsePlacementWorkflowID(id string) (placementID int64, filename string, err error) {
	rest, ok := strings.CutPrefix(id, placementIDPrefix)
	num, enc, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return 0, "", fmt.Errorf("%q is not a placement workflow ID (placement-esr/<placementId>/<filename>)", id)
	}
	if placementID, err = strconv.ParseInt(num, 10, 64); err != nil || placementID < 1 {
		return 0, "", fmt.Errorf("%q: %q is not a placement ID", id, num)
	}
	if filename, err = UnescapeFilename(enc); err != nil {
		return 0, "", fmt.Errorf("%q: filename: %w", id, err)
	}
	if filename == "" || strings.Contains(filename, "/") {
		return 0, "", fmt.Errorf("%q: the filename must be non-empty and hold no \"/\"", id)
	}
	return placementID, filename, nil
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

// Kind is the kind of record the message carries.
func (m PlacementExported) Kind() Kind { return KindPlacement }

// Kind is the kind of record the message carries.
func (m ScanCompleted) Kind() Kind { return KindScan }

// DeadLetterRef names the placement export to mark failed.
func (m PlacementExported) DeadLetterRef(dl DeadLetter) DeadLetter {
	dl.Placement = &PlacementRef{PlacementID: m.PlacementID, Filename: m.Filename}
	return dl
}

// DeadLetterRef names the scan to mark errored, with the result this message would have written.
func (m ScanCompleted) DeadLetterRef(dl DeadLetter) DeadLetter {
	dl.Scan = &ScanRef{ScanID: m.ScanID, Result: m.Result}
	return dl
}

// SameRecord says why other is not a message of this placement export (nil: it is).
func (m PlacementExported) SameRecord(other Message) error {
	o, ok := other.(PlacementExported)
	if !ok {
		return fmt.Errorf("it is a %s message, not a placement's", other.Kind())
	}
	if o.PlacementID != m.PlacementID || o.Filename != m.Filename {
		return fmt.Errorf("it names placement %d file %q, not this record (placement %d file %q)",
			o.PlacementID, o.Filename, m.PlacementID, m.Filename)
	}
	return nil
}

// SameRecord says why other is not a message of this scan (nil: it is).
func (m ScanCompleted) SameRecord(other Message) error {
	o, ok := other.(ScanCompleted)
	if !ok {
		return fmt.Errorf("it is a %s message, not a scan's", other.Kind())
	}
	if o.ScanID != m.ScanID {
		return fmt.Errorf("it names scan %s, not this record (scan %s)", o.ScanID, m.ScanID)
	}
	return nil
}

// KindOfWorkflowID says which kind of record a writeback workflow ID names.
func KindOfWorkflowID(id string) (Kind, error) {
	if strings.HasPrefix(id, "scan/") {
		return KindScan, nil
	}
	if _, _, err := ParsePlacementWorkflowID(id); err != nil {
		return "", fmt.Errorf("%s is not a writeback workflow ID: %w", id, err)
	}
	return KindPlacement, nil
}
