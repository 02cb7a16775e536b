// Package speed measures writeback on the real stack: the dev server's ceiling for the bare shape
// (one workflow, one no-op activity), end-to-end records/s (P1), drain after an outage (P2), worker
// memory with parked dead letters (P3), publish → workflow-started latency (P4), and history events
// per record.
package speed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/bench/stack"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// Config of a speed run.
type Config struct {
	Dir, Root string
	CeilingN  int
	P1N       int
	P2Pending int
	P2Outage  time.Duration
	P3Parked  int
	P4N       int
	P5Rate    float64 // signals/s of the retry job over P3's dead letters (0: no job)
	TCSRate   float64
	Log       func(string, ...any)
	// The servers: stack.ProfileDev or stack.ProfileCluster, with the cluster's Temporal tuning.
	Profile     string
	Shards      int  // numHistoryShards (0: the config's 4)
	AsyncCommit bool // PostgreSQL synchronous_commit=off on Temporal's databases
}

// Result holds the figures.
type Result struct {
	Cfg               Config
	Ceiling           float64 // workflows/s, bare shape
	P1                float64 // records/s publish → TCS written
	P2Drain           time.Duration
	P2Goal            time.Duration
	P2PeakActivities  float64 // TCS-update attempts/s at peak (1 s buckets)
	P2PeakRequests    float64
	P3RSS, P3Baseline int64
	P4p50, P4p99      time.Duration
	P4Rate            float64
	// P5: a retry job over P3's parked dead letters once TCS knows them.
	P5Job                  string
	P5Took                 time.Duration
	P5Completed, P5Runs    int
	P5MaxEvents, P5Records int
	EventsBare             int
	EventsPlacement        int
	EventsScan             int
	MaxBackoff             time.Duration
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Run measures everything on one stack.
func Run(ctx context.Context, c Config) (*Result, error) {
	res := &Result{Cfg: c, MaxBackoff: 5 * time.Minute}
	st, err := stack.Start(ctx, stack.Config{Dir: c.Dir, Root: c.Root, Workers: 1, Placements: 100000, TCSRate: c.TCSRate,
		TopologyTag: fmt.Sprintf("speed-%d", time.Now().UnixNano()%1e9), Profile: c.Profile, Shards: c.Shards, AsyncCommit: c.AsyncCommit})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	tc, err := st.Client()
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	_, pub, cleanup, err := st.Broker("speed-bench", nil, nil)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := waitReady(ctx, tc); err != nil {
		return nil, err
	}

	c.Log("ceiling: %d bare workflows (one no-op activity each)", c.CeilingN)
	if res.Ceiling, res.EventsBare, err = ceiling(ctx, tc, c.CeilingN); err != nil {
		return nil, err
	}
	c.Log("ceiling: %.1f workflows/s, %d history events each", res.Ceiling, res.EventsBare)

	gen := &generator{}
	c.Log("P1: %d records publish → TCS written", c.P1N)
	batch := gen.records(c.P1N, true)
	written0 := written(st.TCSAdmin)
	t0 := time.Now()
	if err := publishAll(ctx, pub, st.Topology.Exchange, batch); err != nil {
		return nil, err
	}
	if err := waitWritten(ctx, st.TCSAdmin, written0+c.P1N, 10*time.Minute); err != nil {
		return nil, err
	}
	res.P1 = float64(c.P1N) / time.Since(t0).Seconds()
	c.Log("P1: %.1f records/s (%.2f × ceiling)", res.P1, res.P1/res.Ceiling)
	res.EventsPlacement = historyLen(ctx, tc, firstOf(batch, contract.KindPlacement))
	res.EventsScan = historyLen(ctx, tc, firstOf(batch, contract.KindScan))

	res.P4Rate = res.P1 / 2
	c.Log("P4: %d records at %.1f/s, publish → workflow started", c.P4N, res.P4Rate)
	if res.P4p50, res.P4p99, err = latency(ctx, tc, pub, st, gen, c.P4N, res.P4Rate); err != nil {
		return nil, err
	}
	c.Log("P4: p50 %s, p99 %s", res.P4p50, res.P4p99)

	if c.P3Parked > 0 {
		res.P3Baseline, _ = stack.RSS(st.Workers[0].Pid())
		c.Log("P3: %d dead letters parked (placements TCS does not know)", c.P3Parked)
		parked := gen.records(c.P3Parked, false)
		if err := publishAll(ctx, pub, st.Topology.Exchange, parked); err != nil {
			return nil, err
		}
		if err := waitCount(ctx, tc, `WritebackState="DeadLettered" AND ExecutionStatus="Running"`, c.P3Parked, 30*time.Minute, c.Log); err != nil {
			return nil, err
		}
		time.Sleep(5 * time.Second)
		res.P3RSS, _ = stack.RSS(st.Workers[0].Pid())
		c.Log("P3: worker RSS %.0f MB with %d parked (%.0f MB before)", mb(res.P3RSS), c.P3Parked, mb(res.P3Baseline))
		if c.P5Rate > 0 {
			if err := retryJob(ctx, c, st, tc, res); err != nil {
				return nil, err
			}
		}
	}

	if c.P2Pending > 0 {
		c.Log("P2: TCS down for %s while %d records arrive", c.P2Outage, c.P2Pending)
		if err := stack.SetFaults(st.TCSAdmin, sim.Faults{Outage: true}); err != nil {
			return nil, err
		}
		outageStart := time.Now()
		pending := gen.records(c.P2Pending, true)
		w0 := written(st.TCSAdmin)
		if err := publishAll(ctx, pub, st.Topology.Exchange, pending); err != nil {
			return nil, err
		}
		time.Sleep(time.Until(outageStart.Add(c.P2Outage)))
		var peakMu sync.Mutex
		stopSampler := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			prevA, prevR := attempts(st.TCSAdmin)
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopSampler:
					return
				case <-t.C:
				}
				a, r := attempts(st.TCSAdmin)
				peakMu.Lock()
				res.P2PeakActivities = max(res.P2PeakActivities, float64(a-prevA))
				res.P2PeakRequests = max(res.P2PeakRequests, float64(r-prevR))
				peakMu.Unlock()
				prevA, prevR = a, r
			}
		}()
		if err := stack.SetFaults(st.TCSAdmin, sim.Faults{}); err != nil {
			return nil, err
		}
		recovered := time.Now()
		err := waitWritten(ctx, st.TCSAdmin, w0+c.P2Pending, 60*time.Minute)
		res.P2Drain = time.Since(recovered)
		close(stopSampler)
		sampler.Wait()
		if err != nil {
			return nil, err
		}
		res.P2Goal = time.Duration(float64(res.MaxBackoff+time.Duration(float64(c.P2Pending)/res.P1*float64(time.Second))) * 1.2)
		c.Log("P2: drained %d in %s after TCS came back (goal %s); peak %.0f TCS-update attempts/s (cap %.0f), %.0f requests/s",
			c.P2Pending, res.P2Drain.Round(time.Second), res.P2Goal.Round(time.Second), res.P2PeakActivities, c.TCSRate, res.P2PeakRequests)
	}
	return res, nil
}

func mb(b int64) float64 { return float64(b) / 1e6 }

func waitReady(ctx context.Context, tc client.Client) error {
	for i := 0; i < 100; i++ {
		if _, err := tc.CheckHealth(ctx, nil); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("temporal not ready")
}

// --- ceiling: the bare shape ---

func bareWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	return workflow.ExecuteActivity(ctx, "noop").Get(ctx, nil)
}

func noop(context.Context) error { return nil }

func ceiling(ctx context.Context, tc client.Client, n int) (float64, int, error) {
	const tq = "bench-ceiling"
	w := worker.New(tc, tq, worker.Options{MaxConcurrentActivityExecutionSize: 200, MaxConcurrentWorkflowTaskExecutionSize: 200})
	w.RegisterWorkflowWithOptions(bareWorkflow, workflow.RegisterOptions{Name: "BareWorkflow"})
	w.RegisterActivityWithOptions(noop, activityName("noop"))
	if err := w.Start(); err != nil {
		return 0, 0, err
	}
	defer w.Stop()
	// Start them all from 200 goroutines, then wait for every result: the server is kept as busy
	// as it can be, so the ceiling is not understated by the load generator.
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	work := make(chan int)
	prefix := uuid.NewString()[:8]
	runs := make([]client.WorkflowRun, n)
	for g := 0; g < 200; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bare-%s-%d", prefix, i), TaskQueue: tq}, "BareWorkflow")
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				runs[i] = run
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return 0, 0, e
	}
	for _, run := range runs {
		if err := run.Get(ctx, nil); err != nil {
			return 0, 0, err
		}
	}
	rate := float64(n) / time.Since(start).Seconds()
	return rate, historyLen(ctx, tc, fmt.Sprintf("bare-%s-0", prefix)), nil
}

// --- records and publishing ---

type outgoing struct {
	key  string
	id   string
	kind contract.Kind
	body []byte
}

type generator struct{ n int }

// records makes n records; known ones are written, unknown ones (placements beyond 100000) dead-letter.
func (g *generator) records(n int, known bool) []outgoing {
	out := make([]outgoing, 0, n)
	for i := 0; i < n; i++ {
		g.n++
		if known && g.n%3 == 0 {
			m := contract.ScanCompleted{ScanID: "e" + uuid.NewString()[1:], Result: "CLEAN", FileName: "f.pdf", CompletedAt: time.Now().UTC()}
			b, _ := json.Marshal(m)
			out = append(out, outgoing{key: contract.RoutingKeyScanCompleted, id: m.WorkflowID(), kind: contract.KindScan, body: b})
			continue
		}
		pid := int64(g.n%100000 + 1)
		if !known {
			pid = 200000 + int64(g.n)
		}
		m := contract.PlacementExported{PlacementID: pid, PositionNumber: 1, PositionID: 1, Filename: fmt.Sprintf("SPEED_%09d.DAT", g.n), ExportedAt: time.Now().UTC()}
		b, _ := json.Marshal(m)
		out = append(out, outgoing{key: contract.RoutingKeyPlacementExported, id: m.WorkflowID(), kind: contract.KindPlacement, body: b})
	}
	return out
}

func firstOf(batch []outgoing, k contract.Kind) string {
	for _, o := range batch {
		if o.kind == k {
			return o.id
		}
	}
	return ""
}

func publishAll(ctx context.Context, pub *broker.Publisher, exchange string, batch []outgoing) error {
	var pending []*broker.Pending
	for _, o := range batch {
		p, err := pub.PublishAsync(ctx, exchange, o.key, amqp.Publishing{ContentType: "application/json", Body: o.body})
		if err != nil {
			return err
		}
		pending = append(pending, p)
		if len(pending) == 500 {
			for _, p := range pending {
				if err := p.Wait(ctx); err != nil {
					return err
				}
			}
			pending = pending[:0]
		}
	}
	for _, p := range pending {
		if err := p.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

func written(admin string) int {
	var s sim.Stats
	_ = stack.AdminGet(admin, "/admin/stats", &s)
	return s.Exported + s.ScansDone
}

// attempts counts TCS-update attempts (GET placement + PUT scan) and all requests so far.
func attempts(admin string) (int, int) {
	var s sim.Stats
	_ = stack.AdminGet(admin, "/admin/stats", &s)
	a, r := 0, 0
	for ep, byStatus := range s.Requests {
		for _, n := range byStatus {
			r += n
			if ep == "GET placement" || ep == "PUT scan" {
				a += n
			}
		}
	}
	return a, r
}

func waitWritten(ctx context.Context, admin string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for written(admin) < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d records written after %s", written(admin), want, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func waitCount(ctx context.Context, tc client.Client, q string, want int, timeout time.Duration, log func(string, ...any)) error {
	deadline := time.Now().Add(timeout)
	last := time.Now()
	for {
		resp, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q})
		if err == nil && int(resp.GetCount()) >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%q: not %d after %s", q, want, timeout)
		}
		if time.Since(last) > 15*time.Second && err == nil {
			log("  %d/%d", resp.GetCount(), want)
			last = time.Now()
		}
		time.Sleep(time.Second)
	}
}

func historyLen(ctx context.Context, tc client.Client, id string) int {
	if id == "" {
		return 0
	}
	iter := tc.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for iter.HasNext() {
		if _, err := iter.Next(); err != nil {
			return n
		}
		n++
	}
	return n
}

// latency publishes n records at rate and measures publish → workflow started (visibility StartTime).
func latency(ctx context.Context, tc client.Client, pub *broker.Publisher, st *stack.Stack, g *generator, n int, rate float64) (time.Duration, time.Duration, error) {
	batch := g.records(n, true)
	sent := map[string]time.Time{}
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	for _, o := range batch {
		sent[o.id] = time.Now()
		if err := pub.Publish(ctx, st.Topology.Exchange, o.key, amqp.Publishing{ContentType: "application/json", Body: o.body}); err != nil {
			return 0, 0, err
		}
		next = next.Add(interval)
		time.Sleep(time.Until(next))
	}
	var lat []time.Duration
	deadline := time.Now().Add(2 * time.Minute)
	for _, o := range batch {
		for {
			d, err := tc.DescribeWorkflowExecution(ctx, o.id, "")
			if err == nil {
				lat = append(lat, d.GetWorkflowExecutionInfo().GetStartTime().AsTime().Sub(sent[o.id]))
				break
			}
			if time.Now().After(deadline) {
				return 0, 0, fmt.Errorf("workflow %s never started", o.id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], nil
}

// retryJob is P5: TCS learns every record, then `starter retry --all` runs one job over P3's parked
// dead letters; it measures how long the job took and how its history held (runs, events per run).
func retryJob(ctx context.Context, c Config, st *stack.Stack, tc client.Client, res *Result) error {
	if err := stack.AdminPost(st.TCSAdmin, "/admin/known", map[string]bool{"all": true}); err != nil {
		return err
	}
	res.P5Records = c.P3Parked
	c.Log("P5: retry job over %d dead letters at %.0f signals/s", c.P3Parked, c.P5Rate)
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, st.StarterBin, "retry", "--all", "--rate", fmt.Sprint(c.P5Rate), "--reason", "bench P5",
		"--by", "bench", "--no-wait")
	cmd.Env = append(os.Environ(), st.StarterEnv()...)
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("starter retry --all: %v", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	res.P5Job = strings.TrimPrefix(first, "job ")
	var st0 struct {
		State     string `json:"state"`
		Completed int    `json:"completed"`
	}
	for {
		show := exec.CommandContext(ctx, st.StarterBin, "jobs", "show", res.P5Job, "--json")
		show.Env = cmd.Env
		if b, err := show.Output(); err == nil && json.Unmarshal(b, &st0) == nil && st0.State != "Running" {
			break
		}
		if time.Since(t0) > 2*time.Hour {
			return fmt.Errorf("P5: job %s still running after 2 h", res.P5Job)
		}
		time.Sleep(2 * time.Second)
	}
	res.P5Took, res.P5Completed = time.Since(t0), st0.Completed
	resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf(`WorkflowId=%q`, res.P5Job)})
	if err != nil {
		return err
	}
	for _, e := range resp.GetExecutions() {
		res.P5Runs++
		res.P5MaxEvents = max(res.P5MaxEvents, int(e.GetHistoryLength()))
	}
	c.Log("P5: job %s %s in %s: %d completed; %d runs, at most %d history events a run", res.P5Job, st0.State,
		res.P5Took.Round(time.Second), res.P5Completed, res.P5Runs, res.P5MaxEvents)
	return nil
}
