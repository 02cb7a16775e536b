package contract

import "time"

// Activity type names, as the workflows schedule them and the worker registers them.
const (
	CurrentRetrySettingsName  = "CurrentRetrySettings"
	FirstPlacementAttemptName = "FirstPlacementAttempt"
	FirstScanAttemptName      = "FirstScanAttempt"
	UpdatePlacementName       = "UpdatePlacement"
	UpdateScanName            = "UpdateScan"
	MarkPlacementFailedName   = "MarkPlacementFailed"
	MarkScanErroredName       = "MarkScanErrored"
	CheckPlacementWrittenName = "CheckPlacementWritten"
	CheckScanWrittenName      = "CheckScanWritten"
)

// RetrySettings are worker settings that a workflow captures in its history when it starts and
// when it is retried, so a changed setting never changes a running workflow on replay.
type RetrySettings struct {
	InitialInterval    time.Duration `json:"initialInterval"`
	BackoffCoefficient float64       `json:"backoffCoefficient"`
	MaximumInterval    time.Duration `json:"maximumInterval"`
	// Budget is how long transient failures may go on before the record is dead-lettered.
	Budget time.Duration `json:"budget"`
	// ParkingPeriod is how long a dead letter waits for a retry or abandon signal.
	ParkingPeriod time.Duration `json:"parkingPeriod"`
	// AttemptTimeout bounds one activity attempt (a few TCS requests); after a worker dies
	// mid-attempt, the attempt is retried elsewhere once this has passed.
	AttemptTimeout time.Duration `json:"attemptTimeout"`
}

// DefaultRetrySettings are the contract's defaults (docs/contract.md, States).
func DefaultRetrySettings() RetrySettings {
	return RetrySettings{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    5 * time.Minute,
		Budget:             24 * time.Hour,
		ParkingPeriod:      30 * 24 * time.Hour,
		AttemptTimeout:     30 * time.Second,
	}
}

// UpdateResult is what a successful TCS update reports.
type UpdateResult struct {
	// Attempt is the attempt of the activity that succeeded (1 for the first try).
	Attempt int32 `json:"attempt"`
	// AlreadyWritten is true when TCS already held the record, e.g. an earlier attempt's answer was lost.
	AlreadyWritten bool `json:"alreadyWritten"`
}

// RecoveryPriority is the task-queue priority key of recovery traffic (a retried dead letter, a
// redriven or reconciled record): below the server's default of 3, so fresh records go first,
// in the task queue and at the TCS rate cap.
const RecoveryPriority = 4

// FailureDetails ride on every TCS-update failure, so the workflow can count attempts and tell
// the record's own time (attempts and backoff) from time its retry waited for a worker.
type FailureDetails struct {
	Attempt int32 `json:"attempt"`
	Status  int   `json:"status"`
	// Took is how long this attempt ran, measured on the worker's clock, less its wait for the TCS
	// rate cap (the queue's time, not the record's).
	Took time.Duration `json:"took,omitempty"`
	// Before is how long the activity had run before this attempt started (its earlier attempts and
	// the backoff between them): on a refusal, the part of the activity's time that was the record's own.
	Before time.Duration `json:"before,omitempty"`
	// Queued: not sent because the rate cap's queue was longer than the attempt could wait (not a
	// hold or an outage, so there is nothing to wait for before trying again).
	Queued bool `json:"queued,omitempty"`
}

// DeadLetter describes one dead-lettering for the mark activity and its CRITICAL log line.
type DeadLetter struct {
	Kind     string `json:"kind"`
	RecordID string `json:"recordId"`
	// Group is the failure group (WritebackFailure), e.g. tcs-404, budget-spent, poison-exportedAt.
	Group          string    `json:"group,omitempty"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"lastError"`
	DeadLetteredAt time.Time `json:"deadLetteredAt"`
	// Exactly one of these is set.
	Placement *PlacementRef `json:"placement,omitempty"`
	Scan      *ScanRef      `json:"scan,omitempty"`
}

// PlacementRef names the placement export to mark failed.
type PlacementRef struct {
	PlacementID int64  `json:"placementId"`
	Filename    string `json:"filename"`
}

// ScanRef names the scan to mark errored, and the result this record would have written (how the mark
// tells that TCS already holds the record).
type ScanRef struct {
	ScanID string `json:"scanId"`
	Result string `json:"result,omitempty"`
}

// MarkResult says what the dead-letter activity did.
type MarkResult struct {
	// Marked is false when TCS does not know the record (404), or rejected the mark itself.
	Marked bool   `json:"marked"`
	Note   string `json:"note,omitempty"`
	// Held: TCS holds the record as this record writes it (a write whose answer was lost landed): it
	// is not dead-lettered but completed; nothing was marked and no CRITICAL line logged.
	Held bool `json:"held,omitempty"`
}

// FirstAttempt is the outcome of the first TCS update of a phase, run as a local activity: the fast
// path while TCS is healthy (no activity task, no second workflow task). It also captures the
// retry settings. It reports failures as data: the workflow falls back to the regular activity,
// with its server-side retry policy, for anything but a success or a permanent answer.
type FirstAttempt struct {
	Settings RetrySettings `json:"settings"`
	Result   UpdateResult  `json:"result"`
	// ErrType is "" on success, else ErrTransient, ErrConfig or ErrPermanent.
	ErrType string `json:"errType,omitempty"`
	Message string `json:"message,omitempty"`
	// Status is TCS's HTTP status on a failure (0 when no answer came).
	Status int `json:"status,omitempty"`
	// RetryAfter is TCS's Retry-After on a 429/503.
	RetryAfter time.Duration `json:"retryAfter,omitempty"`
	// Queued: not sent, the rate cap's queue being longer than the first attempt may wait.
	Queued bool `json:"queued,omitempty"`
}

// ProbeResult is what the probe's activity found: which worker took it and what TCS answered.
type ProbeResult struct {
	Worker string `json:"worker"`
	Answer string `json:"answer"`
}

// Carry is the workflows' optional second input. A run hands its state to the run it continues as
// new (long 401 spells make long histories); the starter sets Poison for a poison message that
// still names its record, which then becomes a dead letter of that record without a TCS write.
type Carry struct {
	Status     Status        `json:"status"`
	Settings   RetrySettings `json:"settings"`
	BudgetLeft time.Duration `json:"budgetLeft"`
	// Poison is why the message is invalid; PoisonGroup its failure group (poison-<field>).
	Poison      string `json:"poison,omitempty"`
	PoisonGroup string `json:"poisonGroup,omitempty"`
	// Recovery is true while a retried (or redriven, reconciled) record is being written.
	Recovery bool `json:"recovery,omitempty"`
	// Acted holds the operator requests' IDs the record acted on.
	Acted []string `json:"acted,omitempty"`
	// Backoffs counts the waits after the record's own failed attempts in this writing phase: the
	// next wait is Backoff(Settings, Backoffs).
	Backoffs int `json:"backoffs,omitempty"`
}
