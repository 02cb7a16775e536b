package contract

import "time"

// Retry jobs (docs/operating.md, After a TCS incident: retry jobs): retry or abandon a fixed set of
// dead letters as a durable job — it survives the CLI's exit and worker restarts, paces its
// signals, tries a canary first, halts when records keep dead-lettering again, and skips records
// operators already retried too often.
const (
	RetryJobWorkflowType = "WritebackRetryJob"
	// Activity names of a job.
	SendRequestsActivity  = "JobSendRequests"
	AwaitOutcomesActivity = "JobAwaitOutcomes"
	// Signals to a job, and its query and memo key.
	SignalJobCancel = "cancel"
	SignalJobResume = "resume"
	QueryJob        = "job"
	MemoJob         = "job"
	// Job states.
	JobRunning   = "Running"
	JobHalted    = "Halted"
	JobDone      = "Done"
	JobCancelled = "Cancelled"
)

// Outcomes a job counts (the same words as internal/operate's).
const (
	JobOutcomeCompleted    = "completed"
	JobOutcomeDeadLettered = "dead-lettered again"
	JobOutcomeAbandoned    = "abandoned"
)

// JobPriority is a job's own task-queue priority key: its workflow tasks and activities (sending
// requests, looking at outcomes) are small and must not wait behind a backlog of records, or an
// operator's job (and its cancel) would not move during an incident. The records it retries still
// run as recovery, behind fresh records.
const JobPriority = 2

// RetryJobID names a job started at t (the CLI adds a random suffix).
func RetryJobID(t time.Time, suffix string) string {
	return "retry-job-" + t.UTC().Format("20060102T150405") + "-" + suffix
}

// JobInput is a job's input; Status is set when it continues as new.
type JobInput struct {
	ID              string        `json:"id"`
	Signal          string        `json:"signal"` // retry or abandon
	IDs             []string      `json:"ids"`    // the records still to do, in order
	Rate            float64       `json:"rate"`
	Canary          int           `json:"canary"`
	MaxFailureRatio float64       `json:"maxFailureRatio"`
	MaxRetries      int           `json:"maxRetries"`
	Reason          string        `json:"reason,omitempty"`
	By              string        `json:"by,omitempty"`
	OutcomeWait     time.Duration `json:"outcomeWait,omitempty"` // how long a batch's outcomes are awaited (default 2 min)
	// SkippedAtStart counts the targets that were not parked dead letters when the job started (closed,
	// or in another state): they are in the job's total and skipped, never signalled. SkippedExamples
	// names the first of them.
	SkippedAtStart  int          `json:"skippedAtStart,omitempty"`
	SkippedExamples []JobFailure `json:"skippedExamples,omitempty"`
	Status          *JobStatus   `json:"status,omitempty"`
	// Watching are the records sent whose outcome was not known yet when the job continued as new.
	Watching []Watched `json:"watching,omitempty"`
}

// Watched is a record the job sent a request to and watches until it settles.
type Watched struct {
	WorkflowID string `json:"workflowId"`
	// Before is the record's deadLetteredAt when it accepted: a dead-lettering at another time is
	// the record dead-lettered again.
	Before string `json:"before"`
	// Until is when the job stops waiting for its outcome (it is then counted as updating).
	Until  time.Time `json:"until"`
	Canary bool      `json:"canary,omitempty"`
}

// JobStatus is what `jobs show --json` prints.
type JobStatus struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Total        int    `json:"total"`
	Signalled    int    `json:"signalled"`
	Completed    int    `json:"completed"`
	DeadLettered int    `json:"deadLettered"`
	Abandoned    int    `json:"abandoned"`
	Skipped      int    `json:"skipped"`
	Pending      int    `json:"pending"`
	HaltReason   string `json:"haltReason"`
	By           string `json:"by"`
	Reason       string `json:"reason"`
	StartedAt    string `json:"startedAt"`
	// Updating counts records signalled whose outcome was not known when their batch was looked at.
	Updating   int          `json:"updating"`
	CanaryDone bool         `json:"canaryDone"`
	Recent     []JobFailure `json:"recent,omitempty"` // the last records that dead-lettered again or were skipped
	// RatioFrom and RatioDeadLetteredFrom are the outcomes and dead letters counted when the job was
	// last resumed: the failure ratio is judged on the outcomes since (a resumed job needs 10 new ones).
	// NotKnown counts records whose request was in a chunk a cancel gave up on (unanswered 5 s after
	// the cancel: Temporal or the records' workers down). Each may have taken it; none is counted as
	// signalled.
	NotKnown              int `json:"notKnown,omitempty"`
	RatioFrom             int `json:"ratioFrom,omitempty"`
	RatioDeadLetteredFrom int `json:"ratioDeadLetteredFrom,omitempty"`
}

// JobFailure is one record a job could not bring through.
type JobFailure struct {
	WorkflowID string `json:"workflowId"`
	What       string `json:"what"` // dead-lettered again, skipped
	Reason     string `json:"reason"`
}

// SendRequest is one chunk of a job's requests for the send activity. Each carries the job's ID as
// its requestId (and Update ID), so a chunk sent again after a failure acts on no record twice.
type SendRequest struct {
	JobID   string        `json:"jobId"`
	Signal  string        `json:"signal"`
	IDs     []string      `json:"ids"`
	Rate    float64       `json:"rate"`
	Payload SignalPayload `json:"payload"`
}

// Sent is what one record did with a job's request.
type Sent struct {
	WorkflowID string `json:"workflowId"`
	Accepted   bool   `json:"accepted"`
	Before     string `json:"before,omitempty"` // its deadLetteredAt when it accepted
	Why        string `json:"why,omitempty"`    // why it was skipped (refused, or closed)
}

// AwaitRequest asks for the outcomes of signalled records.
type AwaitRequest struct {
	IDs    []string          `json:"ids"`
	Before map[string]string `json:"before"`
	Wait   time.Duration     `json:"wait"`
}

// JobOutcome is one record's outcome (see internal/operate).
type JobOutcome struct {
	WorkflowID string `json:"workflowId"`
	Result     string `json:"result"`
	Reason     string `json:"reason,omitempty"`
}
