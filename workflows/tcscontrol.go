package workflows

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tis-writeback/writeback/contract"
	"go.temporal.io/sdk/workflow"
)

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
	if err := workflow.SetQueryHandler(ctx, contract.QueryTCS, func() (contract.TCSStatus, error) { return s.status(), nil }); err != nil {
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
		return workflow.UpsertMemo(ctx, map[string]any{contract.MemoTCS: st})
	}
	if err := publish(); err != nil {
		return err
	}
	cmds := workflow.GetSignalChannel(ctx, contract.SignalTCSCommand)
	reports := workflow.GetSignalChannel(ctx, contract.SignalTCSWorkerMode)
	var sweep workflow.Future
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(cmds, func(c workflow.ReceiveChannel, _ bool) {
			var cmd contract.TCSCommand
			if !receive(ctx, c, &cmd, log) {
				return
			}
			now := workflow.Now(ctx)
			switch cmd.Op {
			case contract.TCSHold:
				if !s.Held {
					s.HoldSince = now
				}
				s.Held, s.HoldReason, s.HoldBy = true, cmd.Reason, cmd.By
			case contract.TCSRelease:
				if s.Held {
					s.NormalSince = now
				}
				s.Held, s.HoldReason, s.HoldBy = false, cmd.Reason, cmd.By
			case contract.TCSRate:
				if cmd.Rate > 0 {
					s.Rate, s.RateReason, s.RateBy = cmd.Rate, cmd.Reason, cmd.By
				}
			case contract.TCSRateReset:
				s.Rate, s.RateReason, s.RateBy = 0, cmd.Reason, cmd.By
			default:
				log.Warn("unknown TCS command ignored", "op", cmd.Op)
				return
			}
			log.Info("TCS control changed by an operator", "op", cmd.Op, "rate", cmd.Rate, "reason", cmd.Reason, "by", cmd.By)
		})
		sel.AddReceive(reports, func(c workflow.ReceiveChannel, _ bool) {
			var r contract.WorkerModeReport
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
			return workflow.NewContinueAsNewError(ctx, contract.TCSControlWorkflowType, &s)
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
		earliest(p.Seen.Add(contract.PresenceTTL))
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
		if now.Sub(p.Seen) >= contract.PresenceTTL {
			delete(s.Present, w)
		}
	}
}

func (s TCSControlState) status() contract.TCSStatus {
	// Rate is what the workers present enforce; with none present and no operator's rate, nobody
	// enforces one: 0 (the CLI then says it shows its own setting).
	st := contract.TCSStatus{Mode: "normal", Since: stamp(s.NormalSince), Held: s.Held, RateOverride: s.Rate,
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
