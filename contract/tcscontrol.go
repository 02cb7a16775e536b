package contract

import (
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

// The TCS control: one long-lived workflow that keeps the operator's switches for TCS (hold, and a
// rate cap in force for all workers) and the workers' own outage reports, so they survive worker
// restarts without another store. Workers read it every few seconds (query); the CLI changes it
// (signal-with-start) and reads it back.
const (
	TCSControlWorkflowType = "WritebackTCSControl"
	TCSControlWorkflowID   = "writeback-tcs-control"
	// SignalTCSCommand carries a TCSCommand from the operator's CLI.
	SignalTCSCommand = "tcs-command"
	// SignalTCSWorkerMode carries a WorkerModeReport from a worker.
	SignalTCSWorkerMode = "tcs-worker-mode"
	// QueryTCS returns the TCSStatus.
	QueryTCS = "tcs"
	// MemoTCS holds the TCSStatus in the control's memo: readable with DescribeWorkflowExecution
	// even when no worker runs (a worker starting during a hold reads it before it takes a task).
	MemoTCS = "tcs"
)

// TCSControlOptions start the control (with a signal: whoever signals first starts it). It runs
// at the highest task-queue priority: its workflow tasks must not wait behind a backlog of
// records, or the workers' shares of the cap and an operator's hold would lag with it.
func TCSControlOptions() client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: TCSControlWorkflowID, TaskQueue: TaskQueue,
		StaticSummary: "TCS control: hold, rate cap, the workers present, outage reports",
		Priority:      temporal.Priority{PriorityKey: 1}}
}

// TCS commands.
const (
	TCSHold      = "hold"
	TCSRelease   = "release"
	TCSRate      = "rate"
	TCSRateReset = "rate-reset"
)

// TCSCommand is an operator's change to the TCS mode or cap.
type TCSCommand struct {
	Op     string  `json:"op"`
	Rate   float64 `json:"rate,omitempty"`
	Reason string  `json:"reason,omitempty"`
	By     string  `json:"by,omitempty"`
}

// TCSMode is how the workers let requests through to TCS.
type TCSMode string

const (
	// TCSModeNormal: every request, at the rate cap.
	TCSModeNormal TCSMode = "normal"
	// TCSModeOutage: TCS fails for everyone; only a probe now and then goes out.
	TCSModeOutage TCSMode = "outage"
	// TCSModeHold: an operator stopped every request.
	TCSModeHold TCSMode = "hold"
)

// TCSModes lists every mode, so their metric series exist from start-up.
var TCSModes = []TCSMode{TCSModeNormal, TCSModeOutage, TCSModeHold}

// WorkerModeReport is a worker telling it is there (every PresenceEvery), its TCS mode and its
// TCS_RATE; Leaving is its last report, sent once it has stopped and sends TCS nothing more.
type WorkerModeReport struct {
	Worker  string  `json:"worker"`
	Mode    TCSMode `json:"mode"` // normal or outage
	TCSRate float64 `json:"tcsRate"`
	Why     string  `json:"why,omitempty"`
	Leaving bool    `json:"leaving,omitempty"`
}

// The workers present share the TCS cap. A worker reports every PresenceEvery; one not heard from
// for PresenceTTL (killed, partitioned) no longer counts, and one that stops gracefully leaves at
// once. Short, so a departed worker's share returns to the others within seconds.
const (
	PresenceEvery = 3 * time.Second
	PresenceTTL   = 10 * time.Second
)

// TCSStatus is what `starter tcs status --json` prints (docs/operating.md, TCS in an incident) and
// workers apply.
type TCSStatus struct {
	Mode       TCSMode `json:"mode"`
	Since      string  `json:"since"`
	Reason     string  `json:"reason"`
	By         string  `json:"by"`
	Rate       float64 `json:"rate"`
	RateSource string  `json:"rateSource"` // "TCS_RATE" (the workers' setting) or "tcs rate" (an operator's)
	// Held and RateOverride are what workers apply.
	Held         bool     `json:"held"`
	RateOverride float64  `json:"rateOverride,omitempty"`
	OutageOn     []string `json:"outageWorkers,omitempty"`
	// Workers are the workers present (sorted): each takes an equal share of the cap.
	Workers []string `json:"workers,omitempty"`
	// RateDisagreement says which workers run with which TCS_RATE when they differ (no operator's
	// rate in force): each then enforces its own share of its own setting.
	RateDisagreement string `json:"rateDisagreement,omitempty"`
}

// ReadTCSStatus decodes the TCSStatus from the control's memo (nil memo: never set).
func ReadTCSStatus(memo map[string]*commonpb.Payload) (TCSStatus, bool) {
	var st TCSStatus
	p, ok := memo[MemoTCS]
	if !ok || converter.GetDefaultDataConverter().FromPayload(p, &st) != nil {
		return st, false
	}
	return st, true
}
