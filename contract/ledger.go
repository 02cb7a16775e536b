package contract

import (
	"fmt"
	"time"
)

// The daily ledger (docs/operating.md, The daily ledger): for one day of records (their workflows
// started that day, UTC), it counts them by outcome and re-reads every Completed record's row in TCS
// through the worker's TCS client, cap and hold, as recovery traffic. A row that is gone or differs
// is drift: the ledger starts the record again (a new run, recovery priority, its history naming the
// ledger), or, report-only, lists it. A Temporal Schedule runs it daily for the day before.
const (
	LedgerWorkflowType = "WritebackLedger"
	// LedgerKind is the WritebackKind of ledger workflows (their WritebackRecordId is the day): how
	// `ledger show` finds a day's last ledger. No count of records looks at it (they filter by state
	// or by kind placement/scan).
	LedgerKind = "ledger"
	// LedgerScheduleID is the daily schedule the worker creates when it is missing.
	LedgerScheduleID = "writeback-ledger"
	// LedgerPageActivity reads one page of a day's records and checks the Completed ones in TCS.
	LedgerPageActivity = "LedgerPage"
	QueryLedger        = "ledger"
	MemoLedger         = "ledger"
	// LedgerDriftListed bounds the drifted records a ledger keeps by name (the rest are counted).
	LedgerDriftListed = 1000
	// Ledger states.
	LedgerRunning = "Running"
	LedgerDone    = "Done"
)

// Outcomes a ledger counts. Poison counts the dead letters of poison messages (group poison-*),
// apart from DeadLettered.
const (
	LedgerPoison = "Poison"
)

// LedgerOutcomes are what a ledger counts, in the order it prints them.
var LedgerOutcomes = []string{StateCompleted, StateDeadLettered, StateAbandoned, StateUpdating, LedgerPoison}

// LedgerDayLayout is a ledger day: YYYY-MM-DD, UTC.
const LedgerDayLayout = "2006-01-02"

// ParseLedgerDay checks a day and returns its start (UTC).
func ParseLedgerDay(day string) (time.Time, error) {
	t, err := time.Parse(LedgerDayLayout, day)
	if err != nil {
		return time.Time{}, fmt.Errorf("day %q is not YYYY-MM-DD", day)
	}
	return t, nil
}

// LedgerWorkflowID names a ledger of day started at t (`ledger run`; the schedule names its own); suffix
// (random) keeps two ledgers of one day started in the same second apart.
func LedgerWorkflowID(day string, t time.Time, suffix string) string {
	return "writeback-ledger-" + day + "-" + t.UTC().Format("150405") + "-" + suffix
}

// LedgerInput is a ledger's input. An empty Day is the day before the ledger started (the schedule).
type LedgerInput struct {
	Day        string `json:"day,omitempty"`
	ReportOnly bool   `json:"reportOnly,omitempty"`
	By         string `json:"by,omitempty"`
	// Report carries the progress over continue-as-new.
	Report *LedgerReport `json:"report,omitempty"`
	Token  []byte        `json:"token,omitempty"`
}

// LedgerReport is what `ledger show --json` prints.
type LedgerReport struct {
	ID         string         `json:"id"`
	Day        string         `json:"day"`
	State      string         `json:"state"`
	ReportOnly bool           `json:"reportOnly"`
	By         string         `json:"by"`
	StartedAt  string         `json:"startedAt"`
	FinishedAt string         `json:"finishedAt,omitempty"`
	Counts     map[string]int `json:"counts"` // Completed, DeadLettered, Abandoned, Updating, Poison
	// Checked counts the Completed records whose row was read; Drift those whose row is gone or
	// differs; Repaired those started again (or found already being written again).
	Checked  int           `json:"checked"`
	Drift    int           `json:"drift"`
	Repaired int           `json:"repaired"`
	Records  []LedgerDrift `json:"records"`
	// NotListed counts drifted records beyond LedgerDriftListed.
	NotListed int `json:"notListed,omitempty"`
	// Expired are the day's dead letters whose parking period ended without a retry or abandon (closed
	// as DeadLettered: nothing more happens to them unless an operator acts), up to LedgerDriftListed.
	Expired []string `json:"expired,omitempty"`
}

// LedgerDrift is one record whose row TCS no longer holds as written, and what the ledger did.
type LedgerDrift struct {
	WorkflowID string `json:"workflowId"`
	Kind       string `json:"kind"`
	RecordID   string `json:"recordId"`
	What       string `json:"what"`   // what TCS holds instead
	Action     string `json:"action"` // written again (run …), being written again, listed (report-only), not started: …
}

// LedgerPageRequest asks for one page of a day's records.
type LedgerPageRequest struct {
	LedgerID   string `json:"ledgerId"`
	Day        string `json:"day"`
	ReportOnly bool   `json:"reportOnly,omitempty"`
	By         string `json:"by,omitempty"`
	Token      []byte `json:"token,omitempty"`
}

// LedgerPage is what one page held.
type LedgerPage struct {
	Counts   map[string]int `json:"counts"`
	Checked  int            `json:"checked"`
	Repaired int            `json:"repaired"`
	Drift    []LedgerDrift  `json:"drift,omitempty"`
	Expired  []string       `json:"expired,omitempty"`
	Next     []byte         `json:"next,omitempty"` // empty: the last page
}
