package contract

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// A rollout (`starter versioning rollout`) takes a new worker build from its first poll to current
// in steps of Worker Versioning's ramping version (by default 10 % then 50 % of the records, then
// current), judging each step by what the build did to its own records against what the current
// build did to its own over the same step: it is promoted only while its records dead-letter and
// finish as well, and rolled back (the ramp removed) the moment they do not. A rollout is a workflow,
// so it survives restarts of the workers that run it and is visible in the Temporal UI.
const (
	RolloutWorkflowType = "WritebackRollout"
	// RolloutKind is the WritebackKind of rollouts (their WritebackRecordId is deployment:build).
	RolloutKind  = "rollout"
	QueryRollout = "rollout"
	MemoRollout  = "rollout"
	// Activities: the deployment's routing (describe, ramp, unset the ramp, set current), and a
	// build's records over a window.
	RolloutDescribeActivity = "RolloutDescribe"
	RolloutRouteActivity    = "RolloutRoute"
	RolloutJudgeActivity    = "RolloutJudge"
	// A rollout's states.
	RolloutWaiting    = "WaitingForWorkers"
	RolloutRamping    = "Ramping"
	RolloutPromoted   = "Promoted"
	RolloutRolledBack = "RolledBack"
	RolloutCancelled  = "Cancelled"
	// RolloutNotStarted: nothing was routed to the build (no worker of it polled, the current build
	// is unversioned, another build ramps); RolloutInconclusive: its steps ran out with too few of its
	// records to judge, so the ramp was removed rather than the build promoted blind; RolloutFailed:
	// the deployment's routing could not be changed (the ramp removed where it could be).
	RolloutNotStarted   = "NotStarted"
	RolloutInconclusive = "Inconclusive"
	RolloutFailed       = "Failed"
)

// RolloutWorkflowID names the rollout of a deployment: one at a time (a deployment has one ramp).
func RolloutWorkflowID(deployment string) string {
	return "writeback-rollout-" + deployment
}

// RolloutInput is a rollout's input; zero values take the defaults.
type RolloutInput struct {
	Deployment string `json:"deployment"`
	BuildID    string `json:"buildId"`
	// Steps are the ramp's percentages before the build becomes current (default 10, 50).
	Steps []float32 `json:"steps,omitempty"`
	// StepDuration is how long each step runs before it is judged (default 5 minutes).
	StepDuration time.Duration `json:"stepDuration,omitempty"`
	// MinRecords is how many of its records the new build must have finished in a step to be judged
	// on them (default 20); a quieter step is extended, up to three times, then judged on what there is.
	MinRecords int `json:"minRecords,omitempty"`
	// MaxDeadLetterExcess is how much the new build's dead-letter ratio may exceed the current
	// build's (default 0.05: five points); MaxUnfinishedExcess the same for records still not done
	// (default 0.2: a build that cannot reach TCS finishes none).
	MaxDeadLetterExcess float64 `json:"maxDeadLetterExcess,omitempty"`
	MaxUnfinishedExcess float64 `json:"maxUnfinishedExcess,omitempty"`
	// WaitForWorkers bounds the wait for the build's first poll (default 10 minutes).
	WaitForWorkers time.Duration `json:"waitForWorkers,omitempty"`
	By             string        `json:"by"`
	Reason         string        `json:"reason"`
}

// WithDefaults fills the zero values.
func (in RolloutInput) WithDefaults() RolloutInput {
	if len(in.Steps) == 0 {
		in.Steps = []float32{10, 50}
	}
	if in.StepDuration <= 0 {
		in.StepDuration = 5 * time.Minute
	}
	if in.MinRecords <= 0 {
		in.MinRecords = 20
	}
	if in.MaxDeadLetterExcess <= 0 {
		in.MaxDeadLetterExcess = 0.05
	}
	if in.MaxUnfinishedExcess <= 0 {
		in.MaxUnfinishedExcess = 0.2
	}
	if in.WaitForWorkers <= 0 {
		in.WaitForWorkers = 10 * time.Minute
	}
	return in
}

// Validate names what is wrong with a rollout's input.
func (in RolloutInput) Validate() error {
	if in.Deployment == "" || in.BuildID == "" {
		return fmt.Errorf("a rollout needs a deployment name and a build ID")
	}
	last := float32(0)
	for _, p := range in.Steps {
		if p != p || p <= last || p >= 100 { // p != p: NaN
			return fmt.Errorf("ramp steps %v: each must be above the one before and below 100 (100 is current)", in.Steps)
		}
		last = p
	}
	return nil
}

// Routing is a deployment's routing: its current and ramping builds ("" for unversioned workers
// or none), and which builds have workers polling.
type Routing struct {
	Current           string   `json:"current"`
	Ramping           string   `json:"ramping"`
	RampingPercentage float32  `json:"rampingPercentage"`
	Polling           []string `json:"polling"`
}

// RouteRequest changes a deployment's routing: ramp BuildID to Percentage, unset the ramp
// (Percentage 0, no BuildID), or make BuildID current (Current).
type RouteRequest struct {
	Deployment string  `json:"deployment"`
	BuildID    string  `json:"buildId,omitempty"`
	Percentage float32 `json:"percentage,omitempty"`
	Current    bool    `json:"current,omitempty"`
	Identity   string  `json:"identity"`
}

// JudgeRequest asks what build's records (those started in [Since, Until) that its workers ran) came
// to; records started after Until-Settle are left out: they have not had the time to finish.
type JudgeRequest struct {
	Deployment string    `json:"deployment"`
	BuildID    string    `json:"buildId"` // "" : unversioned workers
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
}

// BuildHealth is what a build's records of a step came to.
type BuildHealth struct {
	BuildID      string `json:"buildId"`
	Records      int    `json:"records"`
	DeadLettered int    `json:"deadLettered"`
	Unfinished   int    `json:"unfinished"` // still Updating
	// Failures counts the dead letters by failure group (WritebackFailure: the TCS answer, tcs-422,
	// tcs-404, or budget-spent for answers that never came right), of up to the first 500.
	Failures map[string]int `json:"failures,omitempty"`
}

// FailureSummary lists Failures in order of group: "tcs-404 1, tcs-422 24" ("" with none).
func (h BuildHealth) FailureSummary() string {
	var parts []string
	for _, g := range slices.Sorted(maps.Keys(h.Failures)) {
		parts = append(parts, fmt.Sprintf("%s %d", g, h.Failures[g]))
	}
	return strings.Join(parts, ", ")
}

// Ratio is part/Records (0 with no records).
func (h BuildHealth) Ratio(part int) float64 {
	if h.Records == 0 {
		return 0
	}
	return float64(part) / float64(h.Records)
}

// RolloutStep is one step as the rollout judged it.
type RolloutStep struct {
	Percentage float32     `json:"percentage"`
	StartedAt  time.Time   `json:"startedAt"`
	JudgedAt   time.Time   `json:"judgedAt"`
	New        BuildHealth `json:"new"`
	Current    BuildHealth `json:"current"`
	Verdict    string      `json:"verdict"`
}

// RolloutReport is a rollout's state: its query answer, memo and result.
type RolloutReport struct {
	ID         string        `json:"id"`
	Deployment string        `json:"deployment"`
	BuildID    string        `json:"buildId"`
	Previous   string        `json:"previous"` // the build current when it started ("" unversioned)
	State      string        `json:"state"`
	Percentage float32       `json:"percentage"`
	Steps      []RolloutStep `json:"steps"`
	Reason     string        `json:"reason,omitempty"` // why it ended as it did
	By         string        `json:"by"`
	StartedAt  time.Time     `json:"startedAt"`
}
