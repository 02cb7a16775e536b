package workflows

import (
	"fmt"
	"sort"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"

	"github.com/tis-writeback/writeback/contract"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
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
	return client.StartWorkflowOptions{ID: TCSControlWorkflowID, TaskQueue: contract.TaskQueue,
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

// WorkerModeReport is a worker telling it is there (every PresenceEvery), its TCS mode and its
// TCS_RATE; Leaving is its last report, sent once it has stopped and sends TCS nothing more.
type WorkerModeReport struct {
	Worker  string  `json:"worker"`
	Mode    string  `json:"mode"` // normal or outage
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
	Mode       string  `json:"mode"` // normal, outage, hold
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

// Presence is a worker present: when it last reported, and its TCS_RATE.
type Presence struct {
	Seen    time.Time
	TCSRate float64
}

// OutageReport is one worker's outage: since when, and its last report (a worker re-reports while
// it lasts; one that stops reporting, e.g. it died, is forgotten after outageReportTTL).
type OutageReport struct {
	Since, Seen time.Time
}

const outageReportTTL = 2 * time.Minute

// TCSControlState is the control's state, carried over continue-as-new.
type TCSControlState struct {
	Held                   bool
	HoldReason, HoldBy     string
	HoldSince              time.Time
	Rate                   float64
	RateReason, RateBy     string
	Outage                 map[string]OutageReport
	NormalSince            time.Time
	LastOutageWhy, LastWhy string
	// Present is each worker present: when it last reported, and its TCS_RATE.
	Present map[string]Presence
}

// TCSControl keeps the TCS switches. state is nil on the first run.
func TCSControl(ctx workflow.Context, state *TCSControlState) error {
	s := TCSControlState{Outage: map[string]OutageReport{}, NormalSince: workflow.Now(ctx)}
	if state != nil {
		s = *state
		if s.Outage == nil {
			s.Outage = map[string]OutageReport{}
		}
	}
	if s.Present == nil {
		s.Present = map[string]Presence{}
	}
	log := workflow.GetLogger(ctx)
	if err := workflow.SetQueryHandler(ctx, QueryTCS, func() (TCSStatus, error) { return s.status(), nil }); err != nil {
		return err
	}
	published := ""
	publish := func() error {
		st := s.status()
		key := fmt.Sprintf("%+v", st)
		if key == published {
			return nil
		}
		published = key
		return workflow.UpsertMemo(ctx, map[string]any{MemoTCS: st})
	}
	if err := publish(); err != nil {
		return err
	}
	cmds := workflow.GetSignalChannel(ctx, SignalTCSCommand)
	reports := workflow.GetSignalChannel(ctx, SignalTCSWorkerMode)
	var sweep workflow.Future
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(cmds, func(c workflow.ReceiveChannel, _ bool) {
			var cmd TCSCommand
			if !receive(ctx, c, &cmd, log) {
				return
			}
			now := workflow.Now(ctx)
			switch cmd.Op {
			case TCSHold:
				if !s.Held {
					s.HoldSince = now
				}
				s.Held, s.HoldReason, s.HoldBy = true, cmd.Reason, cmd.By
			case TCSRelease:
				if s.Held {
					s.NormalSince = now
				}
				s.Held, s.HoldReason, s.HoldBy = false, cmd.Reason, cmd.By
			case TCSRate:
				if cmd.Rate > 0 {
					s.Rate, s.RateReason, s.RateBy = cmd.Rate, cmd.Reason, cmd.By
				}
			case TCSRateReset:
				s.Rate, s.RateReason, s.RateBy = 0, cmd.Reason, cmd.By
			default:
				log.Warn("unknown TCS command ignored", "op", cmd.Op)
				return
			}
			log.Info("TCS control changed by an operator", "op", cmd.Op, "rate", cmd.Rate, "reason", cmd.Reason, "by", cmd.By)
		})
		sel.AddReceive(reports, func(c workflow.ReceiveChannel, _ bool) {
			var r WorkerModeReport
			if !receive(ctx, c, &r, log) {
				return
			}
			now := workflow.Now(ctx)
			if r.Leaving {
				delete(s.Present, r.Worker)
			} else if r.Worker != "" {
				s.Present[r.Worker] = Presence{Seen: now, TCSRate: r.TCSRate}
			}
			rep, was := s.Outage[r.Worker]
			switch {
			case r.Mode == "outage":
				if !was {
					rep.Since = now
					s.LastOutageWhy = r.Why
				}
				rep.Seen = now
				s.Outage[r.Worker] = rep
			case was:
				delete(s.Outage, r.Worker)
				if len(s.Outage) == 0 {
					s.NormalSince = now
				}
			}
		})
		if sweep == nil {
			if next, ok := s.nextSweep(); ok {
				sweep = workflow.NewTimer(ctx, max(next.Sub(workflow.Now(ctx)), time.Second))
			}
		}
		if sweep != nil {
			// One timer at a time, however many reports arrive: forget the workers that stopped
			// reporting (their cap share returns to the others) and stale outage reports.
			sel.AddFuture(sweep, func(workflow.Future) { sweep = nil })
		}
		sel.Select(ctx)
		s.forgetAbsent(workflow.Now(ctx))
		if len(s.Outage) > 0 {
			s.forgetStaleOutages(workflow.Now(ctx))
		}
		if err := publish(); err != nil {
			return err
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			for sel.HasPending() { // act on what has arrived, so no signal is lost across the new run
				sel.Select(ctx)
			}
			if err := publish(); err != nil {
				return err
			}
			return workflow.NewContinueAsNewError(ctx, TCSControlWorkflowType, &s)
		}
	}
}

// nextSweep is when the first present worker's presence or outage report ends.
func (s TCSControlState) nextSweep() (time.Time, bool) {
	var first time.Time
	earliest := func(t time.Time) {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	//workflowcheck:ignore the earliest: order does not matter
	for _, p := range s.Present {
		earliest(p.Seen.Add(PresenceTTL))
	}
	//workflowcheck:ignore the earliest: order does not matter
	for _, rep := range s.Outage {
		earliest(rep.Seen.Add(outageReportTTL))
	}
	return first, !first.IsZero()
}

// forgetStaleOutages forgets workers that stopped reporting their outage (died, replaced).
func (s *TCSControlState) forgetStaleOutages(now time.Time) {
	//workflowcheck:ignore deleting: order does not matter
	for w, rep := range s.Outage {
		if now.Sub(rep.Seen) >= outageReportTTL {
			delete(s.Outage, w)
		}
	}
	if len(s.Outage) == 0 {
		s.NormalSince = now
	}
}

func (s TCSControlState) forgetAbsent(now time.Time) {
	//workflowcheck:ignore deleting: order does not matter
	for w, p := range s.Present {
		if now.Sub(p.Seen) >= PresenceTTL {
			delete(s.Present, w)
		}
	}
}

func (s TCSControlState) status() TCSStatus {
	// Rate is what the workers present enforce; with none present and no operator's rate, nobody
	// enforces one: 0 (the CLI then says it shows its own setting).
	st := TCSStatus{Mode: "normal", Since: stamp(s.NormalSince), Held: s.Held, RateOverride: s.Rate,
		RateSource: "TCS_RATE"}
	if s.Rate > 0 {
		st.Rate, st.RateSource = s.Rate, "tcs rate"
	}
	//workflowcheck:ignore sorted below
	for w := range s.Outage {
		st.OutageOn = append(st.OutageOn, w)
	}
	sort.Strings(st.OutageOn)
	//workflowcheck:ignore sorted below
	for w := range s.Present {
		st.Workers = append(st.Workers, w)
	}
	sort.Strings(st.Workers)
	// The cap in force is what the workers present enforce: their TCS_RATE, unless an operator's.
	rates := map[float64][]string{}
	for _, w := range st.Workers {
		rates[s.Present[w].TCSRate] = append(rates[s.Present[w].TCSRate], w)
	}
	if len(rates) > 1 && s.Rate == 0 { // an operator's rate is in force for all of them otherwise
		var parts []string
		//workflowcheck:ignore sorted below
		for r, ws := range rates {
			parts = append(parts, fmt.Sprintf("TCS_RATE=%g on %s", r, strings.Join(ws, ", ")))
		}
		sort.Strings(parts)
		st.RateDisagreement = strings.Join(parts, "; ")
	} else if len(st.Workers) > 0 && s.Rate == 0 {
		st.Rate = s.Present[st.Workers[0]].TCSRate
	}
	switch {
	case s.Held:
		st.Mode, st.Since, st.Reason, st.By = "hold", stamp(s.HoldSince), s.HoldReason, s.HoldBy
	case len(s.Outage) > 0:
		first := time.Time{}
		//workflowcheck:ignore the earliest: order does not matter
		for _, rep := range s.Outage {
			if first.IsZero() || rep.Since.Before(first) {
				first = rep.Since
			}
		}
		st.Mode, st.Since, st.Reason, st.By = "outage", stamp(first), s.LastOutageWhy, fmt.Sprintf("%d worker(s)", len(s.Outage))
	}
	return st
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
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
