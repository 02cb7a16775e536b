// Package guard is the one way to TCS: every request writeback sends TCS goes through a Guard, which
// keeps the cap on requests per second (TCS_RATE, all workers together, shared among the workers
// present), an operator's hold and the outage mode the workers enter when TCS fails for everyone.
// A request it keeps back is not sent and is answered as tcs.Refused, which activities hand to
// workflows as contract.ErrOutage: never the record's fault, never charged to its budget.
//
// The state an operator sets (hold, a cap other than TCS_RATE) and the workers present live in the
// TCS control workflow: the Guard reports to it and reads its memo every second, so every worker
// applies the same switches within seconds and a worker that starts during a hold sends nothing.
// The cap is the Guard's alone: Temporal's task-queue rate limit is not used (it would count
// activity tasks, not requests, and miss the local first attempts).
package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"golang.org/x/time/rate"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/tcs"
)

// Options configure a Guard and the TCS client behind it; zero values take the defaults.
type Options struct {
	// URL, Token and Timeout reach TCS (Token is called per request: a rotated file is picked up).
	URL     string
	Token   func() (string, error)
	Timeout time.Duration
	// UserAgent names the worker's build to TCS.
	UserAgent string
	// Rate is TCS_RATE: the requests per second all workers together may send, every path.
	Rate float64
	// Identity names this worker among those sharing the cap (its Temporal identity).
	Identity string
	// Outage decides when TCS fails for everyone: within Window, at least MinFailures transient
	// failures (no answer, 5xx, 429) from at least 3 callers and not one answer that shows TCS
	// working; then one request goes out as a probe every ProbeEvery. Defaults 30 s, 10, 5 s.
	OutageWindow      time.Duration
	OutageMinFailures int
	OutageProbeEvery  time.Duration
	// Observe is told of every request; OnMode of the mode in force at each change; OnCap of the cap
	// in force for all workers (metrics). Each may be nil.
	Observe func(tcs.Observation)
	OnMode  func(Mode)
	OnCap   func(float64)
	Log     *slog.Logger
}

// Guard is the TCS client of a worker with all that protects TCS around it (package comment).
type Guard struct {
	gate *gate
	tcs  *tcs.Client
	o    Options
	// cap is the cap in force for all workers: TCS_RATE, or an operator's `tcs rate`.
	cap     atomic.Value
	log     *slog.Logger
	client  atomic.Pointer[client.Client]
	workers atomic.Int64
	lastWhy atomic.Value
	// poke wakes the reporter, which tells the TCS control this worker is there and its outage
	// mode, in order.
	poke chan struct{}
	// reporting is closed when the reporter has stopped (Leave waits for it, so its last report
	// cannot overtake the leaving one).
	reporting chan struct{}
}

// New builds the Guard and its TCS client, with half the cap as this worker's share until it has
// read the workers present (Prime).
func New(o Options) (*Guard, error) {
	if o.Rate <= 0 {
		return nil, errors.New("guard: the TCS rate must be > 0")
	}
	if o.Log == nil {
		return nil, errors.New("guard: a logger is needed")
	}
	if o.OnMode == nil {
		o.OnMode = func(Mode) {}
	}
	if o.OnCap == nil {
		o.OnCap = func(float64) {}
	}
	g := &Guard{o: o, log: o.Log, poke: make(chan struct{}, 1), reporting: make(chan struct{})}
	g.workers.Store(1)
	g.cap.Store(o.Rate)
	g.gate = newGate(gateOptions{
		Rate:        o.Rate / 2, // until the workers present are read (Prime)
		Window:      o.OutageWindow,
		MinFailures: o.OutageMinFailures,
		ProbeEvery:  o.OutageProbeEvery,
		OnChange:    g.changed,
		OnRecover:   g.wake,
	})
	c, err := tcs.New(tcs.Options{BaseURL: o.URL, Token: o.Token, Timeout: o.Timeout, Observe: o.Observe, Gate: g.gate, UserAgent: o.UserAgent})
	if err != nil {
		return nil, err
	}
	g.tcs = c
	o.OnCap(o.Rate)
	return g, nil
}

// TCS is the client whose every request goes through the Guard.
func (g *Guard) TCS() *tcs.Client { return g.tcs }

// Mode is the mode in force in this worker and since when.
func (g *Guard) Mode() (Mode, time.Time) { return g.gate.Mode() }

// Rate is this worker's share of the cap (requests per second).
func (g *Guard) Rate() float64 { return g.gate.Rate() }

// Workers is how many workers share the cap, as last read.
func (g *Guard) Workers() int64 { return g.workers.Load() }

func (g *Guard) changed(from, to Mode, why string) {
	mode, _ := g.Mode() // what is in force now, should two changes race
	g.o.OnMode(mode)
	level := slog.LevelWarn
	if to == ModeNormal {
		level = slog.LevelInfo
	}
	g.log.Log(context.Background(), level, "TCS mode changed", "from", string(from), "to", string(to), "why", why)
	if from == ModeOutage || to == ModeOutage {
		g.lastWhy.Store(why)
		select {
		case g.poke <- struct{}{}:
		default:
		}
	}
}

// reportPresence tells the TCS control, from one goroutine so reports arrive in order, that this worker
// is there (every PresenceEvery: its share of the cap depends on it) and its own outage mode (not
// an operator's hold), at once on each change.
func (g *Guard) reportPresence(ctx context.Context) {
	defer close(g.reporting)
	reported := false // the control believes this worker is in outage
	t := time.NewTicker(contract.PresenceEvery)
	defer t.Stop()
	for {
		mode, _ := g.gate.Mode()
		inOutage := mode == ModeOutage || (mode == ModeHold && reported)
		why, _ := g.lastWhy.Load().(string)
		report := contract.WorkerModeReport{Mode: ModeNormal, Why: why}
		if inOutage {
			report.Mode = ModeOutage
		}
		if g.report(ctx, report) == nil {
			reported = inOutage
		}
		select {
		case <-ctx.Done():
			return
		case <-g.poke:
		case <-t.C:
		}
	}
}

// Leave tells the TCS control this worker has gone: call it once the worker has stopped and sends
// TCS nothing more, and Run's context has ended. The others take its share of the cap at once
// rather than after PresenceTTL.
func (g *Guard) Leave(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select { // the reporter's last report first
	case <-g.reporting:
	case <-ctx.Done():
	}
	if g.report(ctx, contract.WorkerModeReport{Mode: ModeNormal, Leaving: true}) == nil {
		g.log.Info("left the workers sharing the TCS cap")
	}
}

func (g *Guard) report(ctx context.Context, r contract.WorkerModeReport) error {
	cp := g.client.Load()
	if cp == nil {
		return errors.New("no Temporal client yet")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r.Worker, r.TCSRate = g.o.Identity, g.o.Rate
	_, err := (*cp).SignalWithStartWorkflow(ctx, contract.TCSControlWorkflowID, contract.SignalTCSWorkerMode, r,
		contract.TCSControlOptions(), contract.TCSControlWorkflowType, nil)
	if err != nil && ctx.Err() == nil {
		g.log.Warn("cannot report to the TCS control; trying again", "error", err)
	}
	return err
}

// control applies the operator's switches kept in the TCS control workflow (hold, rate).
func (g *Guard) control(ctx context.Context, c client.Client) {
	// Read from the control's memo: no worker is needed to answer (this one may be the only one).
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	desc, err := c.DescribeWorkflowExecution(dctx, contract.TCSControlWorkflowID, "")
	var st contract.TCSStatus
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		// No operator ever touched it: no hold, the workers' own cap.
	case err != nil:
		return // keep what is in force
	default:
		st, _ = contract.ReadTCSStatus(desc.GetWorkflowExecutionInfo().GetMemo().GetFields())
	}
	why := "released"
	if st.Held {
		why = fmt.Sprintf("held by %s: %s", st.By, st.Reason)
	} else if st.By != "" {
		why = fmt.Sprintf("released by %s: %s", st.By, st.Reason)
	}
	g.gate.SetHold(st.Held, why)
	capTotal := g.o.Rate
	if st.RateOverride > 0 {
		capTotal = st.RateOverride
	}
	if old := g.cap.Swap(capTotal); old != capTotal {
		g.log.Info("TCS rate cap changed", "cap", capTotal, "source", st.RateSource, "by", st.By)
	}
	g.o.OnCap(capTotal)
	g.share(st.Workers, capTotal)
}

// wake signals the records this worker refused that TCS takes requests again, within the cap.
func (g *Guard) wake(ids []string) {
	cp := g.client.Load()
	if cp == nil {
		return
	}
	c := *cp
	go func() {
		lim := rate.NewLimiter(rate.Limit(max(10, g.o.Rate)), 10)
		for _, id := range ids {
			if lim.Wait(context.Background()) != nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = c.SignalWorkflow(ctx, id, "", contract.SignalTCSAvailable, nil) // closed since: nothing to wake
			cancel()
		}
		g.log.Info("woke the records held back while TCS was unavailable", "records", len(ids))
	}()
}

// Prime tells the TCS control this worker is there, then applies the operator's switches and this
// worker's share once, before the worker takes tasks: a worker started during a hold sends nothing.
func (g *Guard) Prime(ctx context.Context, c client.Client) {
	g.client.Store(&c)
	_ = g.report(ctx, contract.WorkerModeReport{Mode: ModeNormal})
	g.control(ctx, c)
}

// Run keeps the switches and this worker's share of the cap current until ctx ends: it reports
// this worker's presence and reads the control's memo every second, so a worker joining or
// leaving changes every share within about a second of the control hearing of it. Run it once;
// end it after the worker has stopped (its running activities still send requests), then Leave.
func (g *Guard) Run(ctx context.Context, c client.Client) {
	g.client.Store(&c)
	go g.reportPresence(ctx)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		g.control(ctx, c)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// share sets this worker's part of the cap: an equal share among the workers present. Until the
// control lists this worker it also counts itself, and takes at most half the cap: workers that
// start together do not see each other yet.
func (g *Guard) share(present []string, capTotal float64) {
	n := int64(len(present))
	if !slices.Contains(present, g.o.Identity) {
		n = max(n+1, 2)
	}
	if old := g.workers.Swap(n); old != n {
		g.log.Info("TCS rate cap shared among the workers present", "workers", n, "cap", capTotal, "thisWorker", capTotal/float64(n))
	}
	g.gate.SetRate(capTotal / float64(n))
}
