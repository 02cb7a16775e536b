package contract

import (
	"encoding/json"
	"log/slog"
	"strconv"

	"go.temporal.io/sdk/temporal"
)

// The names below are the product contract (docs/contract.md); outside tools use them verbatim.

// TaskQueue is the task queue of both workflow types and their activities.
const TaskQueue = "writeback"

// Workflow types.
const (
	PlacementWorkflowType = "RecordPlacementExport"
	ScanWorkflowType      = "RecordScanResult"
)

// ProbeWorkflowType is the end-to-end check (`starter check`, the chart's `helm test`): a workflow on
// the task queue whose one activity (ProbeTCSName) asks TCS for a placement no record has, through the
// worker's TCS client, cap and hold. It writes nothing to TCS and carries no Writeback* attribute, so no
// count of records sees it.
const (
	ProbeWorkflowType = "WritebackProbe"
	ProbeTCSName      = "ProbeTCS"
)

// Signals and the query.
const (
	SignalRetry   = "retry"
	SignalAbandon = "abandon"
	QueryState    = "state"
	// SignalTCSAvailable is internal: a worker sends it to the records whose requests it held back
	// (outage mode, hold) once TCS takes requests again, so they need not wait out their backoff.
	SignalTCSAvailable = "tcs-available"
)

// States, as the query and the WritebackState search attribute show them.
const (
	StateUpdating     = "Updating"
	StateDeadLettered = "DeadLettered"
	StateCompleted    = "Completed"
	StateAbandoned    = "Abandoned"
)

// Search attributes (Keyword), kept current by the workflows.
var (
	KindKey     = temporal.NewSearchAttributeKeyKeyword("WritebackKind")
	RecordIDKey = temporal.NewSearchAttributeKeyKeyword("WritebackRecordId")
	StateKey    = temporal.NewSearchAttributeKeyKeyword("WritebackState")
	// FailureKey holds the group of the last dead-lettering (empty before the first).
	FailureKey = temporal.NewSearchAttributeKeyKeyword("WritebackFailure")
)

// SearchAttributeNames lists the search attributes to register on a namespace.
var SearchAttributeNames = []string{KindKey.GetName(), RecordIDKey.GetName(), StateKey.GetName(), FailureKey.GetName()}

// Failure groups: a short stable name per cause of a dead-lettering (WritebackFailure). Poison
// messages have "poison-<field>" (contract.Invalid.Group).
const (
	// GroupBudgetSpent: transient failures (no answer, 5xx, 429) went on past the retry budget.
	GroupBudgetSpent = "budget-spent"
	// GroupTCSPermanent: TCS refused the record without an HTTP status (e.g. a body it cannot take).
	GroupTCSPermanent = "tcs-permanent"
)

// TCSGroup is the failure group of a permanent TCS answer: "tcs-404", "tcs-422", ….
func TCSGroup(status int) string {
	if status == 0 {
		return GroupTCSPermanent
	}
	return "tcs-" + strconv.Itoa(status)
}

// Metric names counted from workflow code through the SDK's replay-safe metrics handler.
const (
	MetricDeadLetters   = "writeback_dead_letters_total"
	MetricManualRetries = "writeback_manual_retries_total"
	// MetricDeadLettersExpired counts dead letters whose parking period ended without a retry or abandon.
	MetricDeadLettersExpired = "writeback_dead_letters_expired_total"
	// The worker's gauges of what is stuck (read from Temporal every 30 s).
	MetricStalledRecords      = "writeback_stalled_records"
	MetricOldestDeadLetterAge = "writeback_oldest_dead_letter_age_seconds"
	MetricLedgerDrift         = "writeback_ledger_drift_records"
	// MetricRolloutRolledBack is 1 while the last finished rollout of a build ended rolled back.
	MetricRolloutRolledBack = "writeback_rollout_rolled_back"
)

// SignalPayload is the optional payload of retry and abandon.
type SignalPayload struct {
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
	// Job is the retry job that sent the signal, if one did.
	Job string `json:"job,omitempty"`
	// Record, on retry only, is a corrected message of the same record (docs/contract.md, Signals):
	// the retry writes it instead of the original. An invalid or foreign one makes the signal ignored.
	Record json.RawMessage `json:"record,omitempty"`
	// Offer marks a record the starter offers because a message of a parked record arrived on the
	// queue (not an operator's action): the workflow ignores it when it is the record as it is.
	Offer bool `json:"offer,omitempty"`
	// RequestID names the request: a retry or abandon whose RequestID the record already acted on is
	// refused, so a request delivered twice (a job's batch retried, a command re-run) acts once.
	RequestID string `json:"requestId,omitempty"`
	// MaxRetries, when above 0, makes a retry refused once the record was retried that many times
	// (a job's --max-retries, checked by the record itself at the moment it would act).
	MaxRetries int `json:"maxRetries,omitempty"`
}

// Updates: the operator's retry and abandon as Temporal Updates, with the signals' names and
// payloads. The record answers at once whether it accepted the request; a refusal is an
// ApplicationError whose type is one of the Refused* codes and whose message says why.
const (
	UpdateRetry   = SignalRetry
	UpdateAbandon = SignalAbandon
)

// Why a record refuses an operator's request.
const (
	RefusedNotParked     = "not-parked"       // not a dead letter (Updating, or a request already pending)
	RefusedInvalidRecord = "invalid-record"   // the corrected record is invalid or names another record
	RefusedSameRecord    = "same-record"      // the starter offered the record as it is
	RefusedActedOn       = "already-acted-on" // its requestId was acted on before
	RefusedMaxRetries    = "max-retries"      // retried MaxRetries times already
)

// Accepted is a record's answer to an accepted retry or abandon Update.
type Accepted struct {
	Signal string `json:"signal"`
	// DeadLetteredAt and Retries are the record's as it accepted: a later dead-lettering has
	// another DeadLetteredAt.
	DeadLetteredAt string `json:"deadLetteredAt"`
	Retries        int    `json:"retries"`
	Corrected      bool   `json:"corrected,omitempty"`
}

// Status is what the state query returns.
type Status struct {
	State          string `json:"state"`
	Attempts       int    `json:"attempts"`
	LastError      string `json:"lastError"`
	DeadLetteredAt string `json:"deadLetteredAt"`
	Retries        int    `json:"retries"`
}

// LevelCritical is the log level of the one line a dead-lettering writes (docs/contract.md, The
// CRITICAL line): above
// ERROR, rendered as "CRITICAL" by the worker's logger.
const LevelCritical = slog.Level(12)
