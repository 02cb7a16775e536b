package workerapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"golang.org/x/time/rate"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/telemetry"
	"github.com/tis-writeback/writeback/tcs"
)

// Governor is this worker's tcs.Governor with what a worker adds around it: its share of the
// TCS_RATE cap (the cap divided among the workers polling the task queue), the mode as a metric and
// a log line on each change, and the records it refused woken once TCS takes requests again.
type Governor struct {
	*tcs.Governor
	// cap is the cap in force for all workers: TCS_RATE, or an operator's `tcs rate`.
	cap     atomic.Value
	cfg     *Config
	log     *slog.Logger
	metrics *telemetry.TCSMetrics
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

// NewGovernor builds the Governor with half the cap as its share until it has read the workers present.
func NewGovernor(c *Config, m *telemetry.TCSMetrics, log *slog.Logger) *Governor {
	g := &Governor{cfg: c, log: log, metrics: m, poke: make(chan struct{}, 1), reporting: make(chan struct{})}
	g.workers.Store(1)
	g.cap.Store(c.TCSRate)
	g.Governor = tcs.NewGovernor(tcs.GovernorOptions{
		Rate:        c.TCSRate / 2, // until the workers present are read (Prime)
		Window:      c.OutageWindow,
		MinFailures: c.OutageMinFailures,
		ProbeEvery:  c.OutageProbeEvery,
		OnChange:    g.changed,
		OnRecover:   g.wake,
	})
	m.RateLimit.Set(c.TCSRate)
	return g
}

func (g *Governor) changed(from, to tcs.Mode, why string) {
	mode, _ := g.Mode() // what is in force now, should two changes race
	g.metrics.SetMode(mode)
	level := slog.LevelWarn
	if to == tcs.ModeNormal {
		level = slog.LevelInfo
	}
	g.log.Log(context.Background(), level, "TCS mode changed", "from", string(from), "to", string(to), "why", why)
	if from == tcs.ModeOutage || to == tcs.ModeOutage {
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
func (g *Governor) reportPresence(ctx context.Context) {
	defer close(g.reporting)
	reported := false // the control believes this worker is in outage
	t := time.NewTicker(contract.PresenceEvery)
	defer t.Stop()
	for {
		mode, _ := g.Governor.Mode()
		inOutage := mode == tcs.ModeOutage || (mode == tcs.ModeHold && reported)
		why, _ := g.lastWhy.Load().(string)
		if g.report(ctx, contract.WorkerModeReport{Mode: modeName(inOutage), Why: why}) == nil {
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

func modeName(outage bool) string {
	if outage {
		return "outage"
	}
	return "normal"
}

// Leave tells the TCS control this worker has gone: call it once the worker has stopped and sends
// TCS nothing more, and Run's context has ended. The others take its share of the cap at once
// rather than after PresenceTTL.
func (g *Governor) Leave(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select { // the reporter's last report first
	case <-g.reporting:
	case <-ctx.Done():
	}
	if g.report(ctx, contract.WorkerModeReport{Mode: "normal", Leaving: true}) == nil {
		g.log.Info("left the workers sharing the TCS cap")
	}
}

func (g *Governor) report(ctx context.Context, r contract.WorkerModeReport) error {
	cp := g.client.Load()
	if cp == nil {
		return errors.New("no Temporal client yet")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r.Worker, r.TCSRate = g.cfg.WorkerIdentity(), g.cfg.TCSRate
	_, err := (*cp).SignalWithStartWorkflow(ctx, contract.TCSControlWorkflowID, contract.SignalTCSWorkerMode, r,
		contract.TCSControlOptions(), contract.TCSControlWorkflowType, nil)
	if err != nil && ctx.Err() == nil {
		g.log.Warn("cannot report to the TCS control; trying again", "error", err)
	}
	return err
}

// control applies the operator's switches kept in the TCS control workflow (hold, rate).
func (g *Governor) control(ctx context.Context, c client.Client) {
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
	g.SetHold(st.Held, why)
	capTotal := g.cfg.TCSRate
	if st.RateOverride > 0 {
		capTotal = st.RateOverride
	}
	if old := g.cap.Swap(capTotal); old != capTotal {
		g.log.Info("TCS rate cap changed", "cap", capTotal, "source", st.RateSource, "by", st.By)
	}
	g.metrics.RateLimit.Set(capTotal)
	g.share(st.Workers, capTotal)
}

// wake signals the records this worker refused that TCS takes requests again, within the cap.
func (g *Governor) wake(ids []string) {
	cp := g.client.Load()
	if cp == nil {
		return
	}
	c := *cp
	go func() {
		lim := rate.NewLimiter(rate.Limit(max(10, g.cfg.TCSRate)), 10)
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

// WorkerIdentity is this worker's identity as its pollers show it (Identity, or pid@host).
func (c *Config) WorkerIdentity() string {
	if c.Identity != "" {
		return c.Identity
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%d@%s@writeback", os.Getpid(), host)
}

// Workers is how many workers share the cap, as last read.
func (g *Governor) Workers() int64 { return g.workers.Load() }

// Prime tells the TCS control this worker is there, then applies the operator's switches and this
// worker's share once, before the worker takes tasks: a worker started during a hold sends nothing.
func (g *Governor) Prime(ctx context.Context, c client.Client) {
	g.client.Store(&c)
	_ = g.report(ctx, contract.WorkerModeReport{Mode: "normal"})
	g.control(ctx, c)
}

// Run keeps the switches and this worker's share of the cap current until ctx ends: it reports
// this worker's presence and reads the control's memo every second, so a worker joining or
// leaving changes every share within about a second of the control hearing of it. Run it once;
// end it after the worker has stopped (its running activities still send requests), then Leave.
func (g *Governor) Run(ctx context.Context, c client.Client) {
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
func (g *Governor) share(present []string, capTotal float64) {
	n := int64(len(present))
	if !slices.Contains(present, g.cfg.WorkerIdentity()) {
		n = max(n+1, 2)
	}
	if old := g.workers.Swap(n); old != n {
		g.log.Info("TCS rate cap shared among the workers present", "workers", n, "cap", capTotal, "thisWorker", capTotal/float64(n))
	}
	g.SetRate(capTotal / float64(n))
}
