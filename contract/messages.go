package contract

// The two RabbitMQ message types writeback consumes and their validation (docs/contract.md, Messages
// on RabbitMQ). The
// starter validates with them; the workflows take them as input.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxBodyBytes is the largest message body accepted, 64 KiB (docs/contract.md, Messages on RabbitMQ).
const MaxBodyBytes = 65536

// Routing keys, one per kind of record.
const (
	RoutingKeyPlacementExported = "placement.exported"
	RoutingKeyScanCompleted     = "scan.completed"
)

// Kind names a kind of record; it is also the value of the WritebackKind search attribute.
type Kind string

const (
	KindPlacement Kind = "placement"
	KindScan      Kind = "scan"
)

// KindSpec is everything that differs between the two kinds of record by name alone: one row each in
// Kinds, read by the topology, the starter and the workflows instead of a switch of their own.
type KindSpec struct {
	Kind         Kind
	RoutingKey   string
	Queue        string // the default queue name (docs/contract.md, Messages on RabbitMQ)
	WorkflowType string
	// The activities the record's workflow runs: the first attempt (a local activity), the update
	// under the retry policy, the look at TCS before dead-lettering, and the mark.
	FirstAttempt, Update, Check, Mark string
	// parse reads a body of this kind (see Kind.Parse).
	parse func(body []byte) (m Message, named bool, err error)
}

// Kinds is the table of the two kinds.
var Kinds = [...]KindSpec{
	{Kind: KindPlacement, RoutingKey: RoutingKeyPlacementExported, Queue: "writeback.placement.exported",
		WorkflowType: PlacementWorkflowType, FirstAttempt: FirstPlacementAttemptName, Update: UpdatePlacementName,
		Check: CheckPlacementWrittenName, Mark: MarkPlacementFailedName, parse: parsePlacement},
	{Kind: KindScan, RoutingKey: RoutingKeyScanCompleted, Queue: "writeback.scan.completed",
		WorkflowType: ScanWorkflowType, FirstAttempt: FirstScanAttemptName, Update: UpdateScanName,
		Check: CheckScanWrittenName, Mark: MarkScanErroredName, parse: parseScan},
}

// Message is one record's message, of either kind: what the starter, the workflows and the operator's
// commands need to know of it without a switch on its kind. PlacementExported and ScanCompleted are
// the two; a workflow's input is the message itself.
type Message interface {
	Kind() Kind
	// RecordID is the value of the WritebackRecordId search attribute; WorkflowID the record's
	// workflow ID (docs/contract.md, Workflow IDs); Summary the line the Temporal UI shows.
	RecordID() string
	WorkflowID() string
	Summary() string
	// DeadLetterRef fills in dl what names this record in TCS, for its mark.
	DeadLetterRef(dl DeadLetter) DeadLetter
	// SameRecord says why other is not a message of this same record (nil: it is), for a correction.
	SameRecord(other Message) error
}

// Parse reads a body of this kind once. A valid body gives its message. A poison one gives a
// *Invalid saying why, and named says whether it still names its record (a usable placementId and
// filename, or scanId): then m holds that and every other usable field, for the dead letter.
func (k Kind) Parse(body []byte) (m Message, named bool, err error) {
	spec := k.Spec()
	if spec.parse == nil {
		return nil, false, &Invalid{Reason: fmt.Sprintf("unknown kind of record %q", k)}
	}
	return spec.parse(body)
}

// Spec is the kind's row of Kinds (the zero KindSpec for an unknown kind).
func (k Kind) Spec() KindSpec {
	for _, s := range Kinds {
		if s.Kind == k {
			return s
		}
	}
	return KindSpec{}
}

// KindForRoutingKey maps a routing key to the kind of record it carries.
func KindForRoutingKey(key string) (Kind, bool) {
	for _, s := range Kinds {
		if s.RoutingKey == key {
			return s.Kind, true
		}
	}
	return "", false
}

// RoutingKey is the routing key a message of this kind is published with.
func (k Kind) RoutingKey() string { return k.Spec().RoutingKey }

// PlacementExported says that one placement went out to ESR in one export file.
type PlacementExported struct {
	PlacementID    int64     `json:"placementId"`
	PositionNumber int64     `json:"positionNumber"`
	PositionID     int64     `json:"positionId"`
	Filename       string    `json:"filename"`
	ExportedAt     time.Time `json:"exportedAt"`
}

// ScanCompleted says that a file scan finished with a result.
type ScanCompleted struct {
	ScanID      string    `json:"scanId"`
	Result      string    `json:"result"`
	FileName    string    `json:"fileName"`
	CompletedAt time.Time `json:"completedAt"`
}

// Scan results TCS accepts.
var ScanResults = []string{"CLEAN", "SANITISED", "BLOCKED"}

// Invalid is the error for a poison message: Reason says why in words; Field names the field at
// fault ("" when the body as a whole is, e.g. not JSON).
type Invalid struct {
	Reason string
	Field  string
}

func (e *Invalid) Error() string { return "invalid message: " + e.Reason }

// Group is the failure group of a poison message: "poison-<field>", or "poison-body".
func (e *Invalid) Group() string {
	if e.Field == "" {
		return PoisonGroupPrefix + "body"
	}
	return PoisonGroupPrefix + e.Field
}

// PoisonGroupPrefix starts the failure group of every poison message.
const PoisonGroupPrefix = "poison-"

// IsPoisonGroup says whether a failure group is a poison message's: what it says cannot be trusted,
// so TCS can never be found to hold it "as written".
func IsPoisonGroup(group string) bool { return strings.HasPrefix(group, PoisonGroupPrefix) }

func invalid(format string, args ...any) error { return &Invalid{Reason: fmt.Sprintf(format, args...)} }

// invalidField is invalid for one field.
func invalidField(field, format string, args ...any) error {
	return &Invalid{Reason: fmt.Sprintf(format, args...), Field: field}
}

// IsInvalid reports whether err marks a poison message.
func IsInvalid(err error) bool {
	var inv *Invalid
	return errors.As(err, &inv)
}

// DecodePlacement parses and validates a placement-exported body.
func DecodePlacement(body []byte) (PlacementExported, error) {
	m, _, err := parsePlacementOnce(body)
	return m, err
}

// DecodeScan parses and validates a scan-completed body.
func DecodeScan(body []byte) (ScanCompleted, error) {
	m, _, err := parseScanOnce(body)
	return m, err
}

func parsePlacement(body []byte) (Message, bool, error) { return parsePlacementOnce(body) }
func parseScan(body []byte) (Message, bool, error)      { return parseScanOnce(body) }

// firstError keeps the first of the errors a parse meets, so the reason names the first field at
// fault in the order the contract lists them, while every field is still read once.
type firstError struct{ err error }

func (f *firstError) keep(err error) bool {
	if err != nil && f.err == nil {
		f.err = err
	}
	return err == nil
}

// parsePlacementOnce reads every field of a placement body in one pass: the message with its usable
// fields, whether it names its record, and the first field at fault.
func parsePlacementOnce(body []byte) (m PlacementExported, named bool, err error) {
	fields, err := decodeObject(body)
	if err != nil {
		return m, false, err
	}
	var f firstError
	var e error
	m.PlacementID, e = positiveInt(fields, "placementId")
	idOK := f.keep(e)
	m.PositionNumber, e = positiveInt(fields, "positionNumber")
	f.keep(e)
	m.PositionID, e = positiveInt(fields, "positionId")
	f.keep(e)
	m.Filename, e = fileName(fields, "filename")
	fileOK := f.keep(e)
	m.ExportedAt, e = timestamp(fields, "exportedAt")
	f.keep(e)
	idLen := len(m.WorkflowID())
	if fileOK && idLen > MaxWorkflowIDBytes {
		fileOK = false
		f.keep(invalidField("filename", "field \"filename\" makes a workflow ID of %d bytes (non-ASCII characters are percent-encoded), over Temporal's limit of %d",
			idLen, MaxWorkflowIDBytes))
	}
	return m, idOK && fileOK, f.err
}

// parseScanOnce is parsePlacementOnce for a scan body.
func parseScanOnce(body []byte) (m ScanCompleted, named bool, err error) {
	fields, err := decodeObject(body)
	if err != nil {
		return m, false, err
	}
	var f firstError
	raw, e := str(fields, "scanId")
	idOK := f.keep(e)
	if idOK {
		id, perr := uuid.Parse(raw)
		if idOK = perr == nil && len(raw) == 36; idOK {
			m.ScanID = id.String() // lower case, as the workflow ID wants it
		} else {
			f.keep(invalidField("scanId", "scanId %q is not a UUID", clip(raw)))
		}
	}
	result, e := str(fields, "result")
	if f.keep(e) {
		if validResult(result) {
			m.Result = result
		} else {
			f.keep(invalidField("result", "result %q is not one of %s", clip(result), strings.Join(ScanResults, ", ")))
		}
	}
	m.FileName, e = fileName(fields, "fileName")
	f.keep(e)
	m.CompletedAt, e = timestamp(fields, "completedAt")
	f.keep(e)
	return m, idOK, f.err
}

// Validate checks a placement message built in code (not decoded), e.g. a workflow input.
func (m PlacementExported) Validate() error {
	b, _ := json.Marshal(m)
	_, err := DecodePlacement(b)
	return err
}

// Validate checks a scan message built in code.
func (m ScanCompleted) Validate() error {
	b, _ := json.Marshal(m)
	_, err := DecodeScan(b)
	return err
}

func validResult(r string) bool {
	for _, ok := range ScanResults {
		if r == ok {
			return true
		}
	}
	return false
}

func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	if len(body) > MaxBodyBytes {
		return nil, invalid("body is %d bytes, more than the limit of %d", len(body), MaxBodyBytes)
	}
	if !utf8.Valid(body) {
		return nil, invalid("body is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return nil, invalid("body is not a JSON object: %v", err)
	}
	if fields == nil {
		return nil, invalid("body is not a JSON object: null")
	}
	if dec.More() {
		return nil, invalid("body holds more than one JSON value")
	}
	return fields, nil
}

func present(fields map[string]json.RawMessage, name string) (json.RawMessage, error) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return nil, invalidField(name, "required field %q is missing", name)
	}
	return raw, nil
}

func positiveInt(fields map[string]json.RawMessage, name string) (int64, error) {
	raw, err := present(fields, name)
	if err != nil {
		return 0, err
	}
	if raw[0] == '"' {
		return 0, invalidField(name, "field %q must be an integer, got the string %s", name, clip(string(raw)))
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return 0, invalidField(name, "field %q must be an integer, got %s", name, clip(string(raw)))
	}
	v, err := n.Int64()
	if err != nil {
		return 0, invalidField(name, "field %q must be an integer from 1 to 2^63-1, got %s", name, clip(n.String()))
	}
	if v < 1 {
		return 0, invalidField(name, "field %q must be from 1 to 2^63-1, got %d", name, v)
	}
	return v, nil
}

func str(fields map[string]json.RawMessage, name string) (string, error) {
	raw, err := present(fields, name)
	if err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalidField(name, "field %q must be a string, got %s", name, clip(string(raw)))
	}
	return s, nil
}

func fileName(fields map[string]json.RawMessage, name string) (string, error) {
	s, err := str(fields, name)
	if err != nil {
		return "", err
	}
	n := utf8.RuneCountInString(s)
	if n < 1 || n > 255 {
		return "", invalidField(name, "field %q must be 1 to 255 characters, got %d", name, n)
	}
	if strings.Contains(s, "/") {
		return "", invalidField(name, "field %q must not contain \"/\", got %q", name, clip(s))
	}
	return s, nil
}

func timestamp(fields map[string]json.RawMessage, name string) (time.Time, error) {
	s, err := str(fields, name)
	if err != nil {
		return time.Time{}, err
	}
	t, perr := time.Parse(time.RFC3339Nano, s)
	if perr != nil {
		return time.Time{}, invalidField(name, "field %q must be an RFC 3339 time, got %q", name, clip(s))
	}
	return t, nil
}

// clip keeps reasons short when a field holds something huge.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// IdentifyPlacement reads a poison placement body for the fields that name its record: a usable
// placementId and filename (and an ID Temporal accepts). The other valid fields are filled in too.
func IdentifyPlacement(body []byte) (PlacementExported, bool) {
	m, named, _ := parsePlacementOnce(body)
	return m, named
}

// IdentifyScan reads a poison scan body for a usable scanId, filling in the other valid fields.
func IdentifyScan(body []byte) (ScanCompleted, bool) {
	m, named, _ := parseScanOnce(body)
	return m, named
}
