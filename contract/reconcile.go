package contract

import "time"

// A reconcile job (`starter reconcile --file F`): for a list of exported placements, it asks TCS
// which lack their EXPORTED event for that filename and starts exactly those again: a new run even
// where a closed run of the same ID exists (its write did not stick), at recovery priority. It runs
// in the workers, so its reads go through their TCS guard (the cap, behind fresh records; the hold;
// outage mode) and the CLI needs no TCS token; its history and result say what it did, by whom.
const (
	ReconcileWorkflowType = "WritebackReconcile"
	// ReconcileKind is the WritebackKind of reconcile jobs (their WritebackRecordId is the file read).
	ReconcileKind = "reconcile"
	// ReconcileCheckActivity checks a batch of placements in TCS and starts the missing ones.
	ReconcileCheckActivity = "ReconcileCheck"
	QueryReconcile         = "reconcile"
	// ReconcileJobSize is the most placements one job takes (its input stays far below Temporal's
	// payload limit); a longer file becomes several jobs.
	ReconcileJobSize = 2000
	// ReconcileBatch is the most placements one activity checks.
	ReconcileBatch = 100
	// ReconcileHeldWait is how long a job first waits before asking again for placements the guard
	// did not send (a hold, outage mode, a long queue at the cap); the wait doubles up to
	// ReconcileHeldWaitMax while they are refused, and ends early when the guard says TCS takes
	// requests again (SignalTCSAvailable).
	ReconcileHeldWait    = 10 * time.Second
	ReconcileHeldWaitMax = 5 * time.Minute
	// ReconcileReadWait bounds one read's wait at the cap: a longer queue answers "not sent", and
	// the job asks again later rather than holding a worker's activity slot.
	ReconcileReadWait = 30 * time.Second
	// A job's states.
	ReconcileJobRunning = "Running"
	ReconcileJobDone    = "Done"
)

// ReconcileInput is a reconcile job's input.
type ReconcileInput struct {
	Placements []PlacementExported `json:"placements"`
	// DryRun lists what is missing and starts nothing.
	DryRun bool `json:"dryRun,omitempty"`
	// RetryDeadLetters sends a retry to a missing placement whose workflow is parked as a dead letter
	// (otherwise it is reported).
	RetryDeadLetters bool   `json:"retryDeadLetters,omitempty"`
	By               string `json:"by"`
	Reason           string `json:"reason"`
	// Source names where the placements came from (the file), for the record.
	Source string `json:"source,omitempty"`
	// Concurrency is how many placements one activity checks at once (default 8).
	Concurrency int `json:"concurrency,omitempty"`
	// Report carries the job's progress over continue-as-new (Placements are then those left).
	Report *ReconcileReport `json:"report,omitempty"`
}

// ReconcileConcurrency is the default of ReconcileInput.Concurrency.
const ReconcileConcurrency = 8

// Reconcile outcomes of one placement.
const (
	ReconcilePresent      = "present"       // TCS holds the EXPORTED event
	ReconcileUnknown      = "unknown"       // TCS does not know the placement (404): reported, not started
	ReconcileMissing      = "missing"       // dry run: would be started
	ReconcileStarted      = "started"       // a new run writes it
	ReconcileRunning      = "running"       // a run of its ID is open: it is writing the record now
	ReconcileDeadLettered = "dead-lettered" // its run is parked as a dead letter: reported
	ReconcileRetried      = "retried"       // its parked run was sent a retry
	ReconcileFailed       = "failed"        // TCS failed to answer; Detail says how
	ReconcileStartFailed  = "start-failed"  // missing, but its start or retry failed; Detail says how
)

// ReconcileOutcome is what the job found and did for one placement.
type ReconcileOutcome struct {
	WorkflowID string `json:"workflowId"`
	Outcome    string `json:"outcome"`
	Detail     string `json:"detail,omitempty"`
}

// ReconcileCheckRequest asks the activity to check Placements for job JobID.
type ReconcileCheckRequest struct {
	JobID      string              `json:"jobId"`
	Input      ReconcileInput      `json:"input"` // settings only: its Placements are not sent again
	Placements []PlacementExported `json:"placements"`
}

// ReconcileCheckResult has an outcome for each placement checked; the others were not sent to TCS
// (NotSent says why) and are asked for again later.
type ReconcileCheckResult struct {
	Outcomes []ReconcileOutcome `json:"outcomes"`
	NotSent  string             `json:"notSent,omitempty"`
}

// ReconcileReport is a job's result and query answer; the CLI merges those of its jobs.
type ReconcileReport struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	By        string `json:"by"`
	Reason    string `json:"reason"`
	DryRun    bool   `json:"dryRun"`
	Total     int    `json:"total"`
	StartedAt string `json:"startedAt"`
	// Held counts the times the guard kept the job's reads back (it waited and asked again).
	Held int `json:"held"`
	// Present counts the placements TCS holds; Outcomes lists every other one (a result stays small).
	Present  int                `json:"present"`
	Outcomes []ReconcileOutcome `json:"outcomes"`
	// Duplicates counts placements of the input that named a record already in it (checked once).
	Duplicates int `json:"duplicates,omitempty"`
}

// Checked is how many placements the job has an outcome for.
func (r ReconcileReport) Checked() int { return r.Present + len(r.Outcomes) }
