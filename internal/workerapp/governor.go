package workerapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"golang.org/x/time/rate"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/telemetry"
	"github.com/tis-writeback/writeback/tcs"
	"github.com/tis-writeback/writeback/workflows"
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
	divisor atomic.Int64 // what the cap is divided by: the workers, or 2 while starting
	lastWhy atomic.Value
	started time.Time
	// lastSeen is when each worker identity was last seen polling (used by share only).
	lastSeen map[string]time.Time
	// poke wakes the reporter, which tells the TCS control this worker's outage mode, in order.
	poke chan struct{}
}

// NewGovernor builds the Governor with the whole cap as its share until it has counted the workers.
func NewGovernor(c *Config, m *telemetry.TCSMetrics, log *slog.Logger) *Governor {
	g := &Governor{cfg: c, log: log, metrics: m, poke: make(chan struct{}, 1), started: time.Now(),
		lastSeen: map[string]time.Time{}}
	g.workers.Store(1)
	g.divisor.Store(2)
	g.cap.Store(c.TCSRate)
	g.Governor = tcs.NewGovernor(tcs.GovernorOptions{
		Rate:        c.TCSRate / 2, // until the workers are counted (Prime)
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

// reportOutages tells the TCS control this worker's own outage mode (not an operator's hold): at
// each change, and every 30 s while it lasts, from one goroutine so reports arrive in order.
func (g *Governor) reportOutages(ctx context.Context) {
	reported := false // the control believes this worker is in outage
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.poke:
		case <-t.C:
		}
		mode, _ := g.Governor.Mode()
		inOutage := mode == tcs.ModeOutage || (mode == tcs.ModeHold && reported)
		if !inOutage && !reported {
			continue
		}
		why, _ := g.lastWhy.Load().(string)
		if g.report(ctx, inOutage, why) == nil {
			reported = inOutage
		}
	}
}

func (g *Governor) report(ctx context.Context, outage bool, why string) error {
	cp := g.client.Load()
	if cp == nil {
		return errors.New("no Temporal client yet")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m := "normal"
	if outage {
		m = "outage"
	}
	_, err := (*cp).SignalWithStartWorkflow(ctx, workflows.TCSControlWorkflowID, workflows.SignalTCSWorkerMode,
		workflows.WorkerModeReport{Worker: g.cfg.WorkerIdentity(), Mode: m, TCSRate: g.cfg.TCSRate, Why: why},
		client.StartWorkflowOptions{ID: workflows.TCSControlWorkflowID, TaskQueue: contract.TaskQueue,
			StaticSummary: "TCS control: hold, rate cap, outage reports"},
		workflows.TCSControlWorkflowType, nil)
	if err != nil {
		g.log.Warn("cannot report the TCS mode to the TCS control; trying again", "error", err)
	}
	return err
}

// control applies the operator's switches kept in the TCS control workflow (hold, rate).
func (g *Governor) control(ctx context.Context, c client.Client) {
	// Read from the control's memo: no worker is needed to answer (this one may be the only one).
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	desc, err := c.DescribeWorkflowExecution(dctx, workflows.TCSControlWorkflowID, "")
	var st workflows.TCSStatus
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		// No operator ever touched it: no hold, the workers' own cap.
	case err != nil:
		return // keep what is in force
	default:
		st, _ = workflows.ReadTCSStatus(desc.GetWorkflowExecutionInfo().GetMemo().GetFields())
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
	g.SetRate(capTotal / float64(g.divisor.Load()))
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

// workerMemory is how long a worker counts in the share after it was last seen polling.
const workerMemory = 5 * time.Minute

// WorkerIdentity is this worker's identity as its pollers show it (Identity, or pid@host).
func (c *Config) WorkerIdentity() string {
	if c.Identity != "" {
		return c.Identity
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%d@%s@writeback", os.Getpid(), host)
}

// Workers is how many workers share the cap, as last counted.
func (g *Governor) Workers() int64 { return g.workers.Load() }

// Run keeps this worker's share of the cap current: TCS_RATE divided by the workers polling the
// task queue (their own limiters add up to the cap), until ctx ends.
// Prime applies the operator's switches and this worker's share once, before the worker takes
// tasks: a worker started during a hold sends nothing.
func (g *Governor) Prime(ctx context.Context, c client.Client) {
	g.client.Store(&c)
	g.share(ctx, c)
	g.control(ctx, c)
}

func (g *Governor) Run(ctx context.Context, c client.Client) {
	g.client.Store(&c)
	go g.reportOutages(ctx)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		// The share follows workers joining and leaving within 2 s: over any 10 s window the
		// workers together stay within about 10% of the cap.
		if i%2 == 0 {
			g.share(ctx, c)
		}
		if i%5 == 0 {
			g.control(ctx, c)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *Governor) share(ctx context.Context, c client.Client) {
	// A worker whose task slots are all busy (a backlog waiting for the cap) stops polling for a
	// while, so a worker counts for workerMemory after it was last seen polling either task queue
	// type: counting a departed worker a little longer only keeps the total under the cap.
	now := time.Now()
	for _, tqType := range []enums.TaskQueueType{enums.TASK_QUEUE_TYPE_WORKFLOW, enums.TASK_QUEUE_TYPE_ACTIVITY} {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := c.DescribeTaskQueue(dctx, contract.TaskQueue, tqType)
		cancel()
		if err != nil {
			return // keep the last share
		}
		for _, p := range resp.GetPollers() {
			if at := p.GetLastAccessTime().AsTime(); at.After(g.lastSeen[p.GetIdentity()]) {
				g.lastSeen[p.GetIdentity()] = at
			}
		}
	}
	g.lastSeen[g.cfg.WorkerIdentity()] = now // this worker counts even before its own first poll shows
	seen := map[string]bool{}
	for id, at := range g.lastSeen {
		if now.Sub(at) < workerMemory {
			seen[id] = true
		} else {
			delete(g.lastSeen, id)
		}
	}
	n := int64(len(seen))
	divisor := n
	if time.Since(g.started) < 10*time.Second {
		// Workers starting together may not see each other's polls yet: take at most half the cap.
		divisor = max(n, 2)
	}
	capTotal := g.cap.Load().(float64)
	if old := g.workers.Swap(n); old != n {
		g.log.Info("TCS rate cap shared among the workers", "workers", n, "cap", capTotal, "thisWorker", capTotal/float64(n))
	}
	g.divisor.Store(divisor)
	g.SetRate(capTotal / float64(divisor))
}
