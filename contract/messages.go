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
}

// Kinds is the table of the two kinds.
var Kinds = [...]KindSpec{
	{Kind: KindPlacement, RoutingKey: RoutingKeyPlacementExported, Queue: "writeback.placement.exported",
		WorkflowType: PlacementWorkflowType, FirstAttempt: FirstPlacementAttemptName, Update: UpdatePlacementName,
		Check: CheckPlacementWrittenName, Mark: MarkPlacementFailedName},
	{Kind: KindScan, RoutingKey: RoutingKeyScanCompleted, Queue: "writeback.scan.completed",
		WorkflowType: ScanWorkflowType, FirstAttempt: FirstScanAttemptName, Update: UpdateScanName,
		Check: CheckScanWrittenName, Mark: MarkScanErroredName},
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
	var m PlacementExported
	fields, err := decodeObject(body)
	if err != nil {
		return m, err
	}
	if m.PlacementID, err = positiveInt(fields, "placementId"); err != nil {
		return m, err
	}
	if m.PositionNumber, err = positiveInt(fields, "positionNumber"); err != nil {
		return m, err
	}
	if m.PositionID, err = positiveInt(fields, "positionId"); err != nil {
		return m, err
	}
	if m.Filename, err = fileName(fields, "filename"); err != nil {
		return m, err
	}
	if m.ExportedAt, err = timestamp(fields, "exportedAt"); err != nil {
		return m, err
	}
	if n := len(m.WorkflowID()); n > MaxWorkflowIDBytes {
		return m, invalidField("filename", "field \"filename\" makes a workflow ID of %d bytes (non-ASCII characters are percent-encoded), over Temporal's limit of %d",
			n, MaxWorkflowIDBytes)
	}
	return m, nil
}

// DecodeScan parses and validates a scan-completed body.
func DecodeScan(body []byte) (ScanCompleted, error) {
	var m ScanCompleted
	fields, err := decodeObject(body)
	if err != nil {
		return m, err
	}
	raw, err := str(fields, "scanId")
	if err != nil {
		return m, err
	}
	id, perr := uuid.Parse(raw)
	if perr != nil || len(raw) != 36 {
		return m, invalidField("scanId", "scanId %q is not a UUID", clip(raw))
	}
	m.ScanID = id.String() // lower case, as the workflow ID wants it
	if m.Result, err = str(fields, "result"); err != nil {
		return m, err
	}
	if !validResult(m.Result) {
		return m, invalidField("result", "result %q is not one of %s", clip(m.Result), strings.Join(ScanResults, ", "))
	}
	if m.FileName, err = fileName(fields, "fileName"); err != nil {
		return m, err
	}
	if m.CompletedAt, err = timestamp(fields, "completedAt"); err != nil {
		return m, err
	}
	return m, nil
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
	var m PlacementExported
	fields, err := decodeObject(body)
	if err != nil {
		return m, false
	}
	if m.PlacementID, err = positiveInt(fields, "placementId"); err != nil {
		return m, false
	}
	if m.Filename, err = fileName(fields, "filename"); err != nil || len(m.WorkflowID()) > MaxWorkflowIDBytes {
		return m, false
	}
	m.PositionNumber, _ = positiveInt(fields, "positionNumber")
	m.PositionID, _ = positiveInt(fields, "positionId")
	m.ExportedAt, _ = timestamp(fields, "exportedAt")
	return m, true
}

// IdentifyScan reads a poison scan body for a usable scanId, filling in the other valid fields.
func IdentifyScan(body []byte) (ScanCompleted, bool) {
	var m ScanCompleted
	fields, err := decodeObject(body)
	if err != nil {
		return m, false
	}
	raw, err := str(fields, "scanId")
	if err != nil {
		return m, false
	}
	id, perr := uuid.Parse(raw)
	if perr != nil || len(raw) != 36 {
		return m, false
	}
	m.ScanID = id.String()
	if r, err := str(fields, "result"); err == nil && validResult(r) {
		m.Result = r
	}
	m.FileName, _ = fileName(fields, "fileName")
	m.CompletedAt, _ = timestamp(fields, "completedAt")
	return m, true
}
