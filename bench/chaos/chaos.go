// Package chaos publishes a mixed batch of records through the real stack while TCS fails, times out
// and goes down, workers and the starter are SIGKILLed, RabbitMQ's app and the Temporal dev server
// restart, and poison messages arrive; then it reconciles from the outside (TCS, visibility,
// RabbitMQ) and proves nothing was lost or duplicated — beside the pre-fix consumer, which loses.
package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/bench/naive"
	"github.com/tis-writeback/writeback/bench/stack"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/demo"
	"github.com/tis-writeback/writeback/internal/operate"
	"github.com/tis-writeback/writeback/internal/rabbitnode"
	"github.com/tis-writeback/writeback/starter/intake"
	"github.com/tis-writeback/writeback/tcs"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// Config of a chaos run.
type Config struct {
	Dir, Root        string
	Records          int
	PublishRate      float64 // messages per second
	ScanFraction     float64
	UnknownFraction  float64 // records TCS does not know: dead letters by design
	PoisonEvery      int     // one poison message per this many records
	ErrorRate        float64 // TCS 503s while running
	TimeoutRate      float64 // TCS answers lost after the write
	Outages          []time.Duration
	KillWorkerEvery  time.Duration
	KillStarterEvery time.Duration
	RabbitDown       time.Duration // 0: no RabbitMQ restart (cluster profile: the record queues' leader node)
	TemporalDown     time.Duration // 0: no Temporal restart
	Workers          int
	Starters         int    // starter processes (0: 1)
	Profile          string // stack.ProfileDev (default), stack.ProfileCluster or ProfileKube
	// The dev profile's RabbitMQ: its URL (default: the machine's, localhost:5672) and its node, which
	// the RabbitMQ fault stops and starts (zero: the machine's default node). The tests give theirs.
	AMQPURL    string
	RabbitNode rabbitnode.Ref
	Kube       KubeConfig
	TCSRate    float64
	// Operator adds an operator's actions under the faults (a hold and release, a retry job resumed
	// and cancelled mid-run) and reconciles what the jobs say against the records.
	Operator      bool
	SettleTimeout time.Duration
	Seed          uint64
	Log           io.Writer // progress lines
}

// Window is a fault's time span, for the plot.
type Window struct {
	Label      string
	Start, End time.Duration
}

// Sample is one point of the written-over-time series.
type Sample struct {
	At time.Duration
	// WritebackPlacements and Naive are the placements each side had written to TCS (EXPORTED) then:
	// like counted with like (the pre-fix consumer handles no scans).
	WritebackPlacements, Naive int
}

// Side is one system's tally.
type Side struct {
	Published, Exported, Failed, Missing, Duplicates int
}

// Report is the outcome of a run.
type Report struct {
	Cfg                              Config
	Duration                         time.Duration
	Valid, Poison, Placements, Scans int
	Unknown                          int
	Writeback, Naive                 Side
	Completed, DeadLettered, Other   int
	DeadLetteredUnmarked             []string
	CriticalMismatch                 []string
	// CriticalRepeats counts CRITICAL lines that repeat one dead-lettering (same run, same
	// deadLetteredAt): the mark activity ran again after its completion was lost to a kill or a server
	// restart. At-least-once, as every activity: allowed, reported. Operators deduplicate on those keys.
	CriticalRepeats int
	ScansMissing    int
	// StillMoving counts records still being written when the run ended: reported as such, not lost.
	StillMoving      int
	QueuesLeft       int
	DLQ              int
	DLQWithoutReason int
	// DLQCopies counts second copies of a poison message: at-least-once (a publish retried after a
	// lost confirm, or a dead-lettering whose ack was lost to a kill) — allowed, reported.
	DLQCopies int
	// DLQNotPoison are the reasons of DLQ messages that were not published as poison.
	DLQNotPoison                  []string
	RetriedCompleted, RetriedLeft int
	Kills                         map[string]int
	// Notes are what a target measured of its faults (the kube profile: a rollout, drains, readiness).
	Notes    []string
	Windows  []Window
	Samples  []Sample
	Problems []string
}

// OK reports whether every promise held.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

type record struct {
	kind      contract.Kind
	body      []byte
	id        string // workflow ID
	known     bool
	placement *contract.PlacementExported
	scan      *contract.ScanCompleted
}

// Run runs the chaos run.
func Run(ctx context.Context, c Config) (*Report, error) {
	r := &run{ctx: ctx, cfg: c, rnd: rand.New(rand.NewPCG(c.Seed, c.Seed^0x5bd1e995)),
		tag: fmt.Sprintf("chaos-%d", time.Now().UnixNano()%1e9)}
	r.logf = func(format string, a ...any) {
		if c.Log != nil {
			fmt.Fprintf(c.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
		}
	}
	defer r.close()
	if err := r.startTarget(); err != nil {
		return nil, err
	}
	if err := r.startNaive(); err != nil {
		return nil, err
	}
	r.makeRecords()

	r.start = time.Now()
	r.setFaults(r.baseFaults())
	stopSampling := r.sample()
	published, pubDone := r.publish()
	publishFor := time.Duration(float64(c.Records)/c.PublishRate*float64(time.Second)) + time.Second
	pl, stopChaos := r.scheduleFaults(publishFor)
	var op *operator
	if c.Operator {
		op = scheduleOperator(pl, r.st, r.start)
	}
	stopProgress := r.progress(published)

	<-pubDone
	time.Sleep(time.Until(r.start.Add(publishFor)))
	stopChaos()
	// Everything that was killed runs again; faults end.
	r.st.Heal(ctx, pl)
	r.setFaults(sim.Faults{})
	r.logf("publishing done (%d records, %d poison); faults cleared; waiting for every record to settle", r.rep.Valid, r.rep.Poison)

	err := r.settle()
	stopProgress()
	r.rep.Duration = r.since()
	stopSampling()
	if err != nil {
		return nil, err
	}
	r.stopNaive()

	reconcile(ctx, r.rep, r.recs, r.st, r.naiveAdmin, r.tc, r.conn)
	job2 := retryAll(ctx, r.rep, r.recs, r.st, r.tc, r.start, r.logf)
	reconcileOperator(ctx, r.rep, op, r.st, r.tc, job2, ownOf(r.recs))
	return r.rep, nil
}

// run is one chaos run: the target under test, the pre-fix consumer beside it on the same broker and
// TCS faults, the records, and the report its phases fill.
type run struct {
	ctx  context.Context
	cfg  Config
	rnd  *rand.Rand
	tag  string
	logf func(format string, a ...any)

	st         Target
	topo       broker.Topology
	naiveAdmin string
	conn       *broker.Conn
	pub        *broker.Publisher
	tc         client.Client
	nc         *naive.Consumer
	stopNaive  func() // stops the pre-fix consumer and waits for it
	closers    []func()

	recs  []record
	rep   *Report
	start time.Time
	mu    sync.Mutex // the report's windows, samples, kills, notes and problems, written by the fault goroutines
}

func (r *run) since() time.Duration { return time.Since(r.start) }

// close stops what the run started, the last first.
func (r *run) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// startTarget brings up the stack under test (processes or the Helm release), a second simulator for
// the pre-fix consumer, a broker connection and a Temporal client.
func (r *run) startTarget() error {
	var err error
	if r.cfg.Profile == ProfileKube {
		r.st, err = startKube(r.ctx, r.cfg)
	} else {
		r.st, err = startProcesses(r.ctx, r.cfg, r.tag, demo.SeededPlacements)
	}
	if err != nil {
		return err
	}
	r.closers = append(r.closers, r.st.Close)
	r.topo = r.st.Topology()
	var naiveAddr string
	if naiveAddr, r.naiveAdmin, err = r.st.StartSim("naive-tcs"); err != nil {
		return err
	}
	conn, pub, cleanup, err := r.st.Broker("chaos-bench", []string{r.tag + ".naive", r.tag + ".naive.dlq"}, []string{r.tag + ".naive.dlx"})
	if err != nil {
		return err
	}
	r.conn, r.pub = conn, pub
	r.closers = append(r.closers, cleanup)
	naiveTCS, _ := tcs.New(tcs.Options{BaseURL: "http://" + naiveAddr, Token: tcs.StaticToken(sim.DevToken), Timeout: 2 * time.Second})
	r.nc = &naive.Consumer{Conn: conn, Exchange: r.topo.Exchange, Queue: r.tag + ".naive", DLX: r.tag + ".naive.dlx", DLQ: r.tag + ".naive.dlq",
		TCS: naiveTCS, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return nil
}

// startNaive runs the pre-fix consumer beside writeback. Like its framework did, it consumes again
// when it lost its subscription (a cluster node stopping: amqp091-go's recovery does not bring back a
// consumer whose queue was on that node): a watcher sees the queue without a consumer and starts it
// afresh. Then the Temporal client.
func (r *run) startNaive() error {
	nctx, cancel := context.WithCancel(r.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for nctx.Err() == nil {
			r.naiveOnce(nctx)
			time.Sleep(time.Second)
		}
	}()
	var once sync.Once
	r.stopNaive = func() { once.Do(func() { cancel(); <-done }) }
	r.closers = append(r.closers, cancel)
	time.Sleep(500 * time.Millisecond) // the naive queue is bound before the first publish

	tc, err := r.st.Client()
	if err != nil {
		return err
	}
	r.tc = tc
	r.closers = append(r.closers, tc.Close)
	return nil
}

// naiveOnce runs the pre-fix consumer until it ends or its queue has no consumer any more.
func (r *run) naiveOnce(nctx context.Context) {
	rctx, cancelRun := context.WithCancel(nctx)
	defer cancelRun()
	runDone := make(chan struct{})
	go func() { _ = r.nc.Run(rctx); close(runDone) }()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-runDone:
			return
		case <-nctx.Done():
			return
		case <-t.C:
			if consumers(r.conn, r.nc.Queue) == 0 {
				cancelRun()
				select { // a Run stuck on a broken channel does not hold the watcher
				case <-runDone:
				case <-time.After(10 * time.Second):
				}
				return
			}
		}
	}
}

// makeRecords draws the run's records (placements and scans, some TCS does not know) and counts them.
func (r *run) makeRecords() {
	c, rnd := r.cfg, r.rnd
	const placementsKnown = demo.SeededPlacements
	r.recs = make([]record, 0, c.Records)
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for i := 0; i < c.Records; i++ {
		known := rnd.Float64() >= c.UnknownFraction
		if rnd.Float64() < c.ScanFraction {
			m := contract.ScanCompleted{ScanID: demo.ScanID(known), Result: contract.ScanResults[rnd.IntN(3)], FileName: fmt.Sprintf("scan-%d.pdf", i),
				CompletedAt: day.Add(time.Duration(i) * time.Second)}
			b, _ := json.Marshal(m)
			r.recs = append(r.recs, record{kind: contract.KindScan, body: b, id: m.WorkflowID(), known: known, scan: &m})
		} else {
			pid := int64(rnd.IntN(placementsKnown) + 1)
			if !known {
				pid = demo.UnknownPlacementID(rnd, placementsKnown)
			}
			m := contract.PlacementExported{PlacementID: pid, PositionNumber: int64(25000000 + i), PositionID: int64(6900000 + i),
				Filename: fmt.Sprintf("DE_SEV_APP_20261123_%08d.DAT", i), ExportedAt: day.Add(time.Duration(i) * time.Second)}
			b, _ := json.Marshal(m)
			r.recs = append(r.recs, record{kind: contract.KindPlacement, body: b, id: m.WorkflowID(), known: known, placement: &m})
		}
	}
	r.rep = &Report{Cfg: c, Kills: map[string]int{}}
	for _, rec := range r.recs {
		r.rep.Valid++
		if !rec.known {
			r.rep.Unknown++
		}
		if rec.kind == contract.KindScan {
			r.rep.Scans++
		} else {
			r.rep.Placements++
		}
	}
}

func (r *run) baseFaults() sim.Faults {
	return sim.Faults{ErrorRate: r.cfg.ErrorRate, TimeoutRate: r.cfg.TimeoutRate}
}

// setFaults gives both simulators the same faults: writeback and the pre-fix consumer see one TCS.
func (r *run) setFaults(f sim.Faults) {
	_ = stack.SetFaults(r.st.TCSAdmin(), f)
	_ = stack.SetFaults(r.naiveAdmin, f)
}

// window records a fault's span, for the plot.
func (r *run) window(label string, from time.Duration) {
	r.mu.Lock()
	r.rep.Windows = append(r.rep.Windows, Window{Label: label, Start: from, End: r.since()})
	r.mu.Unlock()
}

// sample records, every second, how many placements each side has written; stop ends it.
func (r *run) sample() (stop func()) {
	sctx, cancel := context.WithCancel(r.ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			var a, b sim.Stats
			// a simulator that did not answer (a busy node) makes no point, not a drop to zero
			if stack.AdminGet(r.st.TCSAdmin(), "/admin/stats", &a) == nil && stack.AdminGet(r.naiveAdmin, "/admin/stats", &b) == nil {
				r.mu.Lock()
				r.rep.Samples = append(r.rep.Samples, Sample{At: r.since(), WritebackPlacements: a.Exported, Naive: b.Exported})
				r.mu.Unlock()
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// publish sends the records at the rate, a poison message now and then, retried through broker
// restarts; done closes when all are out.
func (r *run) publish() (published *atomic.Int64, done chan struct{}) {
	published, done = &atomic.Int64{}, make(chan struct{})
	go func() {
		defer close(done)
		interval := time.Duration(float64(time.Second) / r.cfg.PublishRate)
		next := time.Now()
		for i, rec := range r.recs {
			if every := r.cfg.PoisonEvery; every > 0 && i%every == every/2 {
				publishRetry(r.ctx, r.pub, r.topo.Exchange, rec.kind.RoutingKey(), []byte(fmt.Sprintf(`{"poison":%d}`, i)))
				r.rep.Poison++
			}
			publishRetry(r.ctx, r.pub, r.topo.Exchange, rec.kind.RoutingKey(), rec.body)
			published.Add(1)
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
	}()
	return published, done
}

// scheduleFaults plans the faults across the publishing window: TCS outages at set points, the
// target's own faults (kills, restarts, a rolling upgrade) by its plan; stop ends them and waits.
func (r *run) scheduleFaults(publishFor time.Duration) (*plan, func()) {
	var wg sync.WaitGroup
	cctx, cancel := context.WithCancel(r.ctx)
	at := func(frac float64, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-cctx.Done():
			case <-time.After(time.Duration(frac * float64(publishFor))):
				f()
			}
		}()
	}
	for i, d := range r.cfg.Outages {
		at(0.2+0.45*float64(i), func() {
			from := r.since()
			r.logf("TCS outage for %s", d)
			r.setFaults(sim.Faults{Outage: true})
			time.Sleep(d)
			r.setFaults(r.baseFaults())
			r.window("TCS outage", from)
		})
	}
	lr := &lockedRand{r: r.rnd} // from here on, goroutines share it
	locked := func(f func()) { r.mu.Lock(); f(); r.mu.Unlock() }
	pl := &plan{ctx: r.ctx, cfg: r.cfg, rnd: lr, at: at, since: r.since, window: r.window, logf: r.logf,
		wait: func(frac float64) {
			select {
			case <-cctx.Done():
			case <-time.After(time.Until(r.start.Add(time.Duration(frac * float64(publishFor))))):
			}
		},
		counted: func(name string) { locked(func() { r.rep.Kills[name]++ }) },
		note: func(format string, a ...any) {
			locked(func() { r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, a...)) })
		},
		problem: func(format string, a ...any) {
			locked(func() { r.rep.Problems = append(r.rep.Problems, fmt.Sprintf(format, a...)) })
		},
		every: func(name string, every time.Duration, f func()) {
			if every <= 0 {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-cctx.Done():
						return
					case <-time.After(every/2 + time.Duration(lr.Int64N(int64(every)))):
					}
					locked(func() { r.rep.Kills[name]++ })
					f()
				}
			}()
		}}
	r.st.Faults(pl)
	return pl, func() { cancel(); wg.Wait() }
}

// progress logs, every 10 s, how far publishing and writing have come; stop ends it.
func (r *run) progress(published *atomic.Int64) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var a sim.Stats
				_ = stack.AdminGet(r.st.TCSAdmin(), "/admin/stats", &a)
				r.logf("published %d/%d, written to TCS %d", published.Load(), r.cfg.Records, a.Exported+a.ScansDone)
			}
		}
	}()
	return func() { close(done) }
}

// settle waits until every record of this run is Completed or DeadLettered and the queues are
// empty, or the settle timeout (then the report names what is still moving).
func (r *run) settle() error {
	own := ownOf(r.recs)
	deadline := time.Now().Add(r.cfg.SettleTimeout)
	for {
		listed, lerr := listIDs(r.ctx, r.tc, settledQuery)
		done := own.settled(listed)
		lp, ls := depth(r.conn, r.topo.PlacementQueue), depth(r.conn, r.topo.ScanQueue) // -1: unknown
		left := lp + ls
		nleft := depth(r.conn, r.nc.Queue)
		// On the cluster and kube profiles the pre-fix consumer may never consume again after its node stopped
		// (its messages then count as lost for it): writeback's side alone decides there.
		if lerr == nil && done >= r.rep.Valid && lp == 0 && ls == 0 && (nleft == 0 || r.st.Clustered()) {
			return nil
		}
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		if time.Now().After(deadline) {
			moving := stillMoving(r.ctx, r.tc, own.unsettled(listed), 10)
			r.rep.StillMoving = len(own.unsettled(listed))
			r.rep.Problems = append(r.rep.Problems, fmt.Sprintf("not settled after %s: %d of %d records done, %d messages queued; still moving (not lost): %s",
				r.cfg.SettleTimeout, done, r.rep.Valid, left, strings.Join(moving, "; ")))
			return nil
		}
		r.logf("settling: %d/%d records Completed or DeadLettered, %d messages queued", done, r.rep.Valid, left)
		time.Sleep(5 * time.Second)
	}
}

func publishRetry(ctx context.Context, pub *broker.Publisher, exchange, key string, body []byte) {
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := pub.Publish(pctx, exchange, key, amqp.Publishing{ContentType: "application/json", Body: body})
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// depth is a queue's ready messages (-1 when it cannot be asked).
func depth(conn *broker.Conn, queue string) int {
	if q, ok := inspect(conn, queue); ok {
		return q.Messages
	}
	return -1
}

// consumers is a queue's consumer count (-1 when it cannot be asked).
func consumers(conn *broker.Conn, queue string) int {
	if q, ok := inspect(conn, queue); ok {
		return q.Consumers
	}
	return -1
}

// inspect asks the broker about a queue on a channel of its own (a missing queue closes it). An
// answer lost while a cluster node stops is "unknown" after the connection's RPC timeout.
func inspect(conn *broker.Conn, queue string) (amqp.Queue, bool) {
	ch, err := conn.Channel()
	if err != nil {
		return amqp.Queue{}, false
	}
	defer broker.CloseChannel(conn, ch)
	q, err := broker.InspectQueue(conn, ch, queue)
	return q, err == nil
}

// states lists every workflow's WritebackState (closed ones included).
func states(ctx context.Context, c client.Client) map[string]string {
	out := map[string]string{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000, NextPageToken: token})
		if err != nil {
			return out
		}
		for _, e := range resp.GetExecutions() {
			var st string
			if p, ok := e.GetSearchAttributes().GetIndexedFields()[contract.StateKey.GetName()]; ok {
				_ = json.Unmarshal(p.GetData(), &st)
			}
			id := e.GetExecution().GetWorkflowId()
			if prev, seen := out[id]; seen && prev != "" {
				st = prev + "+" + st // more than one run
			}
			out[id] = st
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out
		}
	}
}

// moving reports a record whose workflow is still writing it: its latest run is Updating (states
// lists a continued record's runs newest first), or no workflow yet while messages are still queued.
func moving(state string, queued bool) bool {
	return strings.HasPrefix(state, contract.StateUpdating) || (state == "" && queued)
}

func reconcile(ctx context.Context, rep *Report, recs []record, st Target, naiveAdmin string, tc client.Client, conn *broker.Conn) {
	var a, b sim.Export
	_ = stack.AdminGet(st.TCSAdmin(), "/admin/export", &a)
	_ = stack.AdminGet(naiveAdmin, "/admin/export", &b)
	countEvents := func(ex sim.Export, pid int64, file, status string) int {
		n := 0
		for _, e := range ex.Events[pid] {
			if e.Filename == file && e.Status == status {
				n++
			}
		}
		return n
	}
	wfStates := states(ctx, tc)
	queued := depth(conn, st.Topology().PlacementQueue)+depth(conn, st.Topology().ScanQueue) != 0
	crit := criticalLines(st.WorkerLogs())
	for _, r := range recs {
		state := wfStates[r.id]
		switch state {
		case contract.StateCompleted:
			rep.Completed++
		case contract.StateDeadLettered:
			rep.DeadLettered++
		default:
			rep.Other++
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: state %q", r.id, state))
		}
		lines, deadLetterings := 0, len(crit[r.id])
		for _, n := range crit[r.id] {
			lines += n
		}
		rep.CriticalRepeats += lines - deadLetterings
		// One dead-lettering per retry an operator's job made that failed again, plus the one it is
		// parked with: each has its CRITICAL line.
		want := 0
		if state == contract.StateDeadLettered {
			want = 1
		}
		if want > 0 || lines > 0 {
			if s, err := operate.QueryState(ctx, tc, r.id); err == nil {
				want += s.Retries
			}
		}
		if deadLetterings != want {
			rep.CriticalMismatch = append(rep.CriticalMismatch, fmt.Sprintf("%s (%s): CRITICAL lines of %d dead-letterings, not %d",
				r.id, state, deadLetterings, want))
		}
		if r.placement != nil {
			p := r.placement
			rep.Writeback.Published++
			rep.Naive.Published++
			wbExp := countEvents(a, p.PlacementID, p.Filename, tcs.StatusExported)
			nvExp := countEvents(b, p.PlacementID, p.Filename, tcs.StatusExported)
			rep.Writeback.Failed += min(1, countEvents(a, p.PlacementID, p.Filename, tcs.StatusFailed))
			if wbExp > 0 {
				rep.Writeback.Exported++
			}
			if nvExp > 0 {
				rep.Naive.Exported++
			}
			if wbExp > 1 {
				rep.Writeback.Duplicates++
			}
			if nvExp > 1 {
				rep.Naive.Duplicates++
			}
			if r.known {
				if wbExp == 0 && !moving(state, queued) {
					rep.Writeback.Missing++ // neither written nor going to be
				}
				if nvExp == 0 {
					rep.Naive.Missing++
				}
			} else if wbExp != 0 {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: TCS does not know it yet holds an EXPORTED row", r.id))
			}
			if state == contract.StateDeadLettered && r.known && countEvents(a, p.PlacementID, p.Filename, tcs.StatusFailed) == 0 {
				rep.DeadLetteredUnmarked = append(rep.DeadLetteredUnmarked, r.id)
			}
		} else {
			sc, ok := a.Scans[r.scan.ScanID]
			switch {
			case r.known && (!ok || sc.Status != tcs.ScanCompleted) && !moving(state, queued):
				rep.ScansMissing++
			case state == contract.StateDeadLettered && r.known && sc.Status != tcs.ScanErrored:
				rep.DeadLetteredUnmarked = append(rep.DeadLetteredUnmarked, r.id)
			}
		}
	}
	rep.QueuesLeft = depth(conn, st.Topology().PlacementQueue) + depth(conn, st.Topology().ScanQueue)
	// The DLQ must hold every poison message (at least once), each with its reason, and nothing else.
	ch, err := conn.Channel()
	if err == nil {
		seen := map[string]bool{}
		for {
			d, ok, err := ch.Get(st.Topology().DLQ, false)
			if err != nil || !ok {
				break
			}
			rep.DLQ++
			r, _ := d.Headers[intake.HeaderError].(string)
			if r == "" {
				rep.DLQWithoutReason++
			}
			switch body := string(d.Body); {
			case !strings.HasPrefix(body, `{"poison":`):
				rep.DLQNotPoison = append(rep.DLQNotPoison, r)
			case seen[body]:
				rep.DLQCopies++
			default:
				seen[body] = true
			}
		}
		ch.Close() // unacked: the DLQ keeps them
	}
	if rep.Writeback.Missing > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("writeback lost %d placements", rep.Writeback.Missing))
	}
	if rep.Writeback.Duplicates > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("writeback duplicated %d placements", rep.Writeback.Duplicates))
	}
	if rep.ScansMissing > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d known scans are not COMPLETED", rep.ScansMissing))
	}
	if len(rep.DeadLetteredUnmarked) > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d dead letters of known records lack their FAILED/ERRORED mark", len(rep.DeadLetteredUnmarked)))
	}
	if len(rep.CriticalMismatch) > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d records with a wrong number of CRITICAL lines, e.g. %s", len(rep.CriticalMismatch), rep.CriticalMismatch[0]))
	}
	if rep.QueuesLeft != 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d messages left in the record queues", rep.QueuesLeft))
	}
	if rep.DLQ-rep.DLQCopies != rep.Poison || rep.DLQWithoutReason > 0 || len(rep.DLQNotPoison) > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the DLQ holds %d messages (%d copies, %d without a reason, %d not poison: %q); %d poison were published",
			rep.DLQ, rep.DLQCopies, rep.DLQWithoutReason, len(rep.DLQNotPoison), rep.DLQNotPoison, rep.Poison))
	}
}

// criticalLines counts CRITICAL lines per workflow ID and dead-lettering (run ID and
// deadLetteredAt) across every worker incarnation's log.
func criticalLines(files []string) map[string]map[string]int {
	out := map[string]map[string]int{}
	{
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(fh)
			sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
			for sc.Scan() {
				if !strings.Contains(sc.Text(), `"level":"CRITICAL"`) {
					continue
				}
				var line struct {
					WorkflowID     string `json:"workflowId"`
					RunID          string `json:"runId"`
					DeadLetteredAt string `json:"deadLetteredAt"`
				}
				if json.Unmarshal(sc.Bytes(), &line) == nil {
					if out[line.WorkflowID] == nil {
						out[line.WorkflowID] = map[string]int{}
					}
					out[line.WorkflowID][line.RunID+" "+line.DeadLetteredAt]++
				}
			}
			fh.Close()
		}
	}
	return out
}

// retryAll makes every record known to TCS, runs `starter retry --all`, and checks every retryable
// dead letter turns Completed.
// retryAll retries this run's dead letters once TCS knows them all (`retry --all`, a job) and
// returns the job's ID.
func retryAll(ctx context.Context, rep *Report, recs []record, st Target, tc client.Client, runStart time.Time, logf func(string, ...any)) string {
	own := ownOf(recs)
	deadLetters := func() []string { // this run's parked dead letters (nil: unknown)
		ids, err := listIDs(ctx, tc, `WritebackState="DeadLettered" AND ExecutionStatus="Running"`)
		if err != nil {
			return nil
		}
		mine := []string{} // not nil: known to be none
		for _, id := range ids {
			if own[id] {
				mine = append(mine, id)
			}
		}
		return mine
	}
	dead := deadLetters()
	if len(dead) == 0 {
		return ""
	}
	_ = stack.AdminPost(st.TCSAdmin(), "/admin/known", map[string]any{"all": true})
	out, err := cli(ctx, st, "retry", "--query", runsDeadLetters(runStart), "--rate", "50", "--wait", "5m",
		"--reason", "chaos run: records created in TCS", "--by", "bench")
	logf("starter retry --all: %s", strings.TrimSpace(lastLine(out)))
	if err != nil {
		rep.Problems = append(rep.Problems, "starter retry --all failed: "+err.Error())
		return ""
	}
	job, _, _ := strings.Cut(out, "\n")
	job = strings.TrimPrefix(job, "job ")
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if left := deadLetters(); left != nil && len(left) == 0 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	left := deadLetters()
	for tries := 0; left == nil && tries < 30 && ctx.Err() == nil; tries++ { // known, not taken as 0
		time.Sleep(2 * time.Second)
		left = deadLetters()
	}
	if left == nil {
		rep.Problems = append(rep.Problems, "could not list this run's dead letters after retry --all")
	}
	rep.RetriedLeft = len(left)
	rep.RetriedCompleted = len(dead) - rep.RetriedLeft
	if rep.RetriedLeft != 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d of this run's dead letters still DeadLettered after retry --all", rep.RetriedLeft))
	}
	return job
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
