package guard

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/tcs"
)

// Mode is how the gate lets requests through (contract.TCSMode: the same names the TCS control and
// `tcs status` show).
type Mode = contract.TCSMode

const (
	ModeNormal = contract.TCSModeNormal
	ModeOutage = contract.TCSModeOutage
	ModeHold   = contract.TCSModeHold
)

// gateOptions tune a gate; zero values take the defaults.
type gateOptions struct {
	// Rate is this process's share of the requests per second TCS may get (all paths).
	Rate float64
	// Window, MinFailures and MinCallers decide an outage: within Window, at least MinFailures
	// transient failures (no answer, 5xx, 429) from at least MinCallers distinct callers, and not
	// one answer that shows TCS working (a 2xx, or a 4xx about a record). Defaults 30 s, 10, 3.
	Window      time.Duration
	MinFailures int
	MinCallers  int
	// ProbeEvery is how often one request goes out as a probe during an outage (default 5 s).
	ProbeEvery time.Duration
	// OnChange is told of each change of mode, with why.
	OnChange func(from, to Mode, why string)
	// OnRecover is given the callers refused during an outage or hold once requests flow again,
	// so they need not wait out their backoff.
	OnRecover func(callers []string)
	// Now is the clock (tests).
	Now func() time.Time
}

// gate is the tcs.Gate of this process: one rate cap for every request, an operator's hold, and an
// outage mode that stops calling a TCS that fails for everyone, except for probes. It is safe for
// concurrent use and knows nothing of Temporal (the Guard around it does).
type gate struct {
	o       gateOptions
	limiter *rate.Limiter

	mu        sync.Mutex
	mode      Mode
	held      bool // the operator's hold, over any other mode
	since     time.Time
	recent    []outcome
	lastProbe time.Time
	refused   map[string]struct{}

	// Requests wait for the cap's next slot in two lanes: fresh records ahead of recovery (retries
	// of dead letters), so a retry job never starves today's exports. The head of the first
	// non-empty lane is the one that waits on the limiter.
	qmu   sync.Mutex
	lanes [2][]*waiter
}

type waiter struct{ turn chan struct{} }

const (
	laneFresh = iota
	laneRecovery
)

type outcome struct {
	at      time.Time
	caller  string
	failure bool
}

// newGate builds a gate in normal mode.
func newGate(o gateOptions) *gate {
	if o.Rate <= 0 {
		o.Rate = 100
	}
	if o.Window <= 0 {
		o.Window = 30 * time.Second
	}
	if o.MinFailures <= 0 {
		o.MinFailures = 10
	}
	if o.MinCallers <= 0 {
		o.MinCallers = 3
	}
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &gate{o: o, limiter: rate.NewLimiter(rate.Limit(o.Rate), max(1, int(o.Rate/10))), mode: ModeNormal,
		since: o.Now(), refused: map[string]struct{}{}}
}

type callerKey struct{}

// WithCaller names who makes the requests made with ctx (e.g. a workflow ID): outage detection
// counts distinct callers, and refused callers are handed to OnRecover.
func WithCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

type recoveryKey struct{}

// AsRecovery marks the requests made with ctx as recovery traffic: they wait for the cap behind
// every fresh request.
func AsRecovery(ctx context.Context) context.Context {
	return context.WithValue(ctx, recoveryKey{}, true)
}

func laneOf(ctx context.Context) int {
	if r, _ := ctx.Value(recoveryKey{}).(bool); r {
		return laneRecovery
	}
	return laneFresh
}

func callerOf(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

// Mode is the mode in force and since when.
func (g *gate) Mode() (Mode, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.effective(), g.since
}

func (g *gate) effective() Mode {
	if g.held {
		return ModeHold
	}
	return g.mode
}

// Rate is the cap in force (requests per second, this process).
func (g *gate) Rate() float64 { return float64(g.limiter.Limit()) }

// SetRate changes the cap.
func (g *gate) SetRate(r float64) {
	if r > 0 && rate.Limit(r) != g.limiter.Limit() {
		g.limiter.SetLimit(rate.Limit(r))
		g.limiter.SetBurst(max(1, int(r/10)))
	}
}

// SetHold holds or releases every request (the operator's switch).
func (g *gate) SetHold(on bool, why string) {
	g.mu.Lock()
	if g.held == on {
		g.mu.Unlock()
		return
	}
	from := g.effective()
	g.held = on
	g.since = g.o.Now()
	to := g.effective()
	callers := g.takeRefused(to)
	g.mu.Unlock()
	g.changed(from, to, why, callers)
}

// Admit lets a request go, or refuses it (no request is sent) during a hold or an outage; during
// an outage one request per ProbeEvery goes out as a probe. It waits for the rate cap.
func (g *gate) Admit(ctx context.Context) error {
	probe, err := g.admit(ctx, false)
	if err != nil {
		return err
	}
	if err := g.waitSlot(ctx); err != nil {
		// Not sent: the cap's queue is longer than the caller may wait. Not the record's fault.
		return &tcs.NotSent{Why: "the TCS rate cap's queue is longer than this attempt may wait: not sent", Queued: true}
	}
	// A hold or an outage may have begun while this request waited for its slot.
	_, err = g.admit(ctx, probe)
	return err
}

// waitSlot waits for the cap's next slot in the caller's lane; it fails at once when the queue
// ahead is longer than the caller may wait.
func (g *gate) waitSlot(ctx context.Context) error {
	lane := laneOf(ctx)
	w := &waiter{turn: make(chan struct{}, 1)}
	g.qmu.Lock()
	ahead := len(g.lanes[laneFresh])
	if lane == laneRecovery {
		ahead += len(g.lanes[laneRecovery])
	}
	if dl, ok := ctx.Deadline(); ok {
		if r := float64(g.limiter.Limit()); r > 0 && time.Duration(float64(ahead)/r*float64(time.Second)) > time.Until(dl) {
			g.qmu.Unlock()
			return context.DeadlineExceeded
		}
	}
	g.lanes[lane] = append(g.lanes[lane], w)
	g.nudgeHead()
	g.qmu.Unlock()
	defer g.leave(w, lane)
	select {
	case <-w.turn:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.limiter.Wait(ctx)
}

// leave takes w out of its lane and gives the next head its turn.
func (g *gate) leave(w *waiter, lane int) {
	g.qmu.Lock()
	defer g.qmu.Unlock()
	q := g.lanes[lane]
	for i := range q {
		if q[i] == w {
			g.lanes[lane] = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	g.nudgeHead()
}

// nudgeHead tells the head of the first non-empty lane it may wait on the limiter (qmu held).
func (g *gate) nudgeHead() {
	for _, q := range g.lanes {
		if len(q) > 0 {
			select {
			case q[0].turn <- struct{}{}:
			default:
			}
			return
		}
	}
}

// admit checks the mode; during an outage it lets one request per ProbeEvery through as a probe
// (a request already admitted as the probe keeps its place).
func (g *gate) admit(ctx context.Context, isProbe bool) (probe bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.effective() {
	case ModeHold:
		g.refuse(ctx)
		return false, &tcs.NotSent{Why: "TCS requests are on hold by an operator: not sent"}
	case ModeOutage:
		if isProbe {
			return true, nil
		}
		now := g.o.Now()
		if now.Sub(g.lastProbe) < g.o.ProbeEvery {
			g.refuse(ctx)
			return false, &tcs.NotSent{Why: "TCS is in outage mode (it fails for everyone): not sent; a probe goes out every few seconds"}
		}
		g.lastProbe = now
		return true, nil
	}
	return false, nil
}

func (g *gate) refuse(ctx context.Context) {
	if c := callerOf(ctx); c != "" && len(g.refused) < 100000 {
		g.refused[c] = struct{}{}
	}
}

// Observe learns from an answer (or its absence).
func (g *gate) Observe(ctx context.Context, class tcs.Class) {
	now := g.o.Now()
	g.mu.Lock()
	from := g.effective()
	failure := class == tcs.Transient
	g.recent = append(g.recent, outcome{at: now, caller: callerOf(ctx), failure: failure})
	cut := 0
	for cut < len(g.recent) && now.Sub(g.recent[cut].at) > g.o.Window {
		cut++
	}
	g.recent = g.recent[cut:]
	why := ""
	switch {
	case g.mode == ModeOutage && !failure:
		g.mode, g.since, g.recent = ModeNormal, now, nil
		why = fmt.Sprintf("a probe got an answer (%s): TCS is back", class)
	case g.mode == ModeNormal && failure:
		failures, callers, alive := 0, map[string]bool{}, false
		for _, o := range g.recent {
			if o.failure {
				failures++
				callers[o.caller] = true
			} else {
				alive = true
			}
		}
		if !alive && failures >= g.o.MinFailures && len(callers) >= g.o.MinCallers {
			g.mode, g.since, g.lastProbe = ModeOutage, now, now
			why = fmt.Sprintf("%d transient failures from %d callers in %s and no answer that shows TCS working", failures,
				len(callers), g.o.Window)
		}
	}
	to := g.effective()
	var callers []string
	if from != to {
		callers = g.takeRefused(to)
	}
	g.mu.Unlock()
	if why != "" && from != to {
		g.changed(from, to, why, callers)
	}
}

// takeRefused hands over the refused callers when requests flow again.
func (g *gate) takeRefused(to Mode) []string {
	if to != ModeNormal || len(g.refused) == 0 {
		return nil
	}
	out := make([]string, 0, len(g.refused))
	for c := range g.refused {
		out = append(out, c)
	}
	sort.Strings(out)
	g.refused = map[string]struct{}{}
	return out
}

func (g *gate) changed(from, to Mode, why string, callers []string) {
	if from == to {
		return
	}
	if g.o.OnChange != nil {
		g.o.OnChange(from, to, why)
	}
	if len(callers) > 0 && g.o.OnRecover != nil {
		g.o.OnRecover(callers)
	}
}
