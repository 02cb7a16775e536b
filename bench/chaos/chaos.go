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
	logf := func(format string, a ...any) {
		if c.Log != nil {
			fmt.Fprintf(c.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
		}
	}
	rnd := rand.New(rand.NewPCG(c.Seed, c.Seed^0x5bd1e995))
	const placementsKnown = demo.SeededPlacements
	tag := fmt.Sprintf("chaos-%d", time.Now().UnixNano()%1e9)
	var st Target
	var err error
	if c.Profile == ProfileKube {
		st, err = startKube(ctx, c)
	} else {
		st, err = startProcesses(ctx, c, tag, placementsKnown)
	}
	if err != nil {
		return nil, err
	}
	defer st.Close()
	topo := st.Topology()
	naiveAddr, naiveAdmin, err := st.StartSim("naive-tcs")
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, pub, cleanup, err := st.Broker("chaos-bench", []string{tag + ".naive", tag + ".naive.dlq"}, []string{tag + ".naive.dlx"})
	if err != nil {
		return nil, err
	}
	defer cleanup()
	naiveTCS, _ := tcs.New(tcs.Options{BaseURL: "http://" + naiveAddr, Token: tcs.StaticToken(sim.DevToken), Timeout: 2 * time.Second})
	nc := &naive.Consumer{Conn: conn, Exchange: topo.Exchange, Queue: tag + ".naive", DLX: tag + ".naive.dlx", DLQ: tag + ".naive.dlq",
		TCS: naiveTCS, Log: quiet}
	nctx, stopNaive := context.WithCancel(ctx)
	defer stopNaive()
	naiveDone := make(chan error, 1)
	go func() {
		// Like its framework did, the pre-fix consumer consumes again when it lost its subscription
		// (a cluster node stopping: amqp091-go's recovery does not bring back a consumer whose queue
		// was on that node): a watcher sees the queue without a consumer and starts it afresh.
		for nctx.Err() == nil {
			rctx, cancelRun := context.WithCancel(nctx)
			runDone := make(chan struct{})
			go func() { _ = nc.Run(rctx); close(runDone) }()
			t := time.NewTicker(5 * time.Second)
		watch:
			for {
				select {
				case <-runDone:
					break watch
				case <-nctx.Done():
					break watch
				case <-t.C:
					if consumers(conn, nc.Queue) == 0 {
						cancelRun()
						select { // a Run stuck on a broken channel does not hold the watcher
						case <-runDone:
						case <-time.After(10 * time.Second):
						}
						break watch
					}
				}
			}
			t.Stop()
			cancelRun()
			time.Sleep(time.Second)
		}
		naiveDone <- nil
	}()
	time.Sleep(500 * time.Millisecond) // the naive queue is bound before the first publish

	tc, err := st.Client()
	if err != nil {
		return nil, err
	}
	defer tc.Close()

	// The records.
	recs := make([]record, 0, c.Records)
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for i := 0; i < c.Records; i++ {
		known := rnd.Float64() >= c.UnknownFraction
		if rnd.Float64() < c.ScanFraction {
			m := contract.ScanCompleted{ScanID: demo.ScanID(known), Result: contract.ScanResults[rnd.IntN(3)], FileName: fmt.Sprintf("scan-%d.pdf", i),
				CompletedAt: day.Add(time.Duration(i) * time.Second)}
			b, _ := json.Marshal(m)
			recs = append(recs, record{kind: contract.KindScan, body: b, id: m.WorkflowID(), known: known, scan: &m})
		} else {
			pid := int64(rnd.IntN(placementsKnown) + 1)
			if !known {
				pid = demo.UnknownPlacementID(rnd, placementsKnown)
			}
			m := contract.PlacementExported{PlacementID: pid, PositionNumber: int64(25000000 + i), PositionID: int64(6900000 + i),
				Filename: fmt.Sprintf("DE_SEV_APP_20261123_%08d.DAT", i), ExportedAt: day.Add(time.Duration(i) * time.Second)}
			b, _ := json.Marshal(m)
			recs = append(recs, record{kind: contract.KindPlacement, body: b, id: m.WorkflowID(), known: known, placement: &m})
		}
	}
	rep := &Report{Cfg: c, Kills: map[string]int{}}
	for _, r := range recs {
		rep.Valid++
		if !r.known {
			rep.Unknown++
		}
		if r.kind == contract.KindScan {
			rep.Scans++
		} else {
			rep.Placements++
		}
	}

	start := time.Now()
	since := func() time.Duration { return time.Since(start) }
	base := sim.Faults{ErrorRate: c.ErrorRate, TimeoutRate: c.TimeoutRate}
	setFaults := func(f sim.Faults) {
		_ = stack.SetFaults(st.TCSAdmin(), f)
		_ = stack.SetFaults(naiveAdmin, f)
	}
	setFaults(base)
	var winMu sync.Mutex
	window := func(label string, from time.Duration) {
		winMu.Lock()
		rep.Windows = append(rep.Windows, Window{Label: label, Start: from, End: since()})
		winMu.Unlock()
	}

	// Sampling of records written over time.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampleWG sync.WaitGroup
	sampleWG.Add(1)
	go func() {
		defer sampleWG.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			var a, b sim.Stats
			// a simulator that did not answer (a busy node) makes no point, not a drop to zero
			if stack.AdminGet(st.TCSAdmin(), "/admin/stats", &a) == nil && stack.AdminGet(naiveAdmin, "/admin/stats", &b) == nil {
				winMu.Lock()
				rep.Samples = append(rep.Samples, Sample{At: since(), WritebackPlacements: a.Exported, Naive: b.Exported})
				winMu.Unlock()
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	// Publisher: records at the rate, a poison message now and then; retried through broker restarts.
	var published atomic.Int64
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		interval := time.Duration(float64(time.Second) / c.PublishRate)
		next := time.Now()
		for i, r := range recs {
			if c.PoisonEvery > 0 && i%c.PoisonEvery == c.PoisonEvery/2 {
				publishRetry(ctx, pub, topo.Exchange, r.kind.RoutingKey(), []byte(fmt.Sprintf(`{"poison":%d}`, i)))
				rep.Poison++
			}
			publishRetry(ctx, pub, topo.Exchange, r.kind.RoutingKey(), r.body)
			published.Add(1)
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
	}()
	publishFor := time.Duration(float64(c.Records)/c.PublishRate*float64(time.Second)) + time.Second

	// Chaos: scheduled faults across the publishing window, random kills throughout.
	var chaosWG sync.WaitGroup
	chaosCtx, stopChaos := context.WithCancel(ctx)
	at := func(frac float64, f func()) {
		chaosWG.Add(1)
		go func() {
			defer chaosWG.Done()
			select {
			case <-chaosCtx.Done():
			case <-time.After(time.Duration(frac * float64(publishFor))):
				f()
			}
		}()
	}
	for i, d := range c.Outages {
		d := d
		at(0.2+0.45*float64(i), func() {
			from := since()
			logf("TCS outage for %s", d)
			setFaults(sim.Faults{Outage: true})
			time.Sleep(d)
			setFaults(base)
			window("TCS outage", from)
		})
	}
	lr := &lockedRand{r: rnd} // from here on, goroutines share it
	pl := &plan{ctx: ctx, cfg: c, rnd: lr, at: at, since: since, window: window, logf: logf,
		wait: func(frac float64) {
			select {
			case <-chaosCtx.Done():
			case <-time.After(time.Until(start.Add(time.Duration(frac * float64(publishFor))))):
			}
		},
		counted: func(name string) { winMu.Lock(); rep.Kills[name]++; winMu.Unlock() },
		note: func(format string, a ...any) {
			winMu.Lock()
			rep.Notes = append(rep.Notes, fmt.Sprintf(format, a...))
			winMu.Unlock()
		},
		problem: func(format string, a ...any) {
			winMu.Lock()
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, a...))
			winMu.Unlock()
		},
		every: func(name string, every time.Duration, f func()) {
			if every <= 0 {
				return
			}
			chaosWG.Add(1)
			go func() {
				defer chaosWG.Done()
				for {
					select {
					case <-chaosCtx.Done():
						return
					case <-time.After(every/2 + time.Duration(lr.Int64N(int64(every)))):
					}
					winMu.Lock()
					rep.Kills[name]++
					winMu.Unlock()
					f()
				}
			}()
		}}
	st.Faults(pl)
	var op *operator
	if c.Operator {
		op = scheduleOperator(pl, st, start)
	}

	// Progress while publishing.
	progressDone := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-progressDone:
				return
			case <-t.C:
				var a sim.Stats
				_ = stack.AdminGet(st.TCSAdmin(), "/admin/stats", &a)
				logf("published %d/%d, written to TCS %d", published.Load(), c.Records, a.Exported+a.ScansDone)
			}
		}
	}()
	<-pubDone
	time.Sleep(time.Until(start.Add(publishFor)))
	stopChaos()
	chaosWG.Wait()
	// Everything that was killed runs again; faults end.
	st.Heal(ctx, pl)
	setFaults(sim.Faults{})
	logf("publishing done (%d records, %d poison); faults cleared; waiting for every record to settle", rep.Valid, rep.Poison)

	// Settle: every record of this run Completed or DeadLettered, queues empty.
	own := ownOf(recs)
	deadline := time.Now().Add(c.SettleTimeout)
	for {
		listed, lerr := listIDs(ctx, tc, settledQuery)
		done := own.settled(listed)
		lp, ls := depth(conn, topo.PlacementQueue), depth(conn, topo.ScanQueue) // -1: unknown
		left := lp + ls
		nleft := depth(conn, nc.Queue)
		// On the cluster and kube profiles the pre-fix consumer may never consume again after its node stopped
		// (its messages then count as lost for it): writeback's side alone decides there.
		if lerr == nil && done >= rep.Valid && lp == 0 && ls == 0 && (nleft == 0 || st.Clustered()) {
			break
		}
		if ctx.Err() != nil {
			stopSampling()
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			moving := stillMoving(ctx, tc, own.unsettled(listed), 10)
			rep.StillMoving = len(own.unsettled(listed))
			rep.Problems = append(rep.Problems, fmt.Sprintf("not settled after %s: %d of %d records done, %d messages queued; still moving (not lost): %s",
				c.SettleTimeout, done, rep.Valid, left, strings.Join(moving, "; ")))
			break
		}
		logf("settling: %d/%d records Completed or DeadLettered, %d messages queued", done, rep.Valid, left)
		time.Sleep(5 * time.Second)
	}
	close(progressDone)
	rep.Duration = since()
	stopSampling()
	sampleWG.Wait()
	stopNaive()
	<-naiveDone

	reconcile(ctx, rep, recs, st, naiveAdmin, tc, conn)
	job2 := retryAll(ctx, rep, recs, st, tc, start, logf)
	reconcileOperator(ctx, rep, op, st, tc, job2, ownOf(recs))
	return rep, nil
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
