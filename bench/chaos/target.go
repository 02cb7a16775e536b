package chaos

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/bench/stack"
	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/proc"
)

// Target is the system a chaos run drives and breaks: writeback's processes on this machine (the dev
// and cluster profiles, package stack) or the Helm release on the local Kubernetes (the kube profile).
type Target interface {
	Topology() broker.Topology
	TCSAdmin() string // writeback's TCS simulator's admin address
	Client() (client.Client, error)
	// Broker connects a confirming publisher and declares the record topology; cleanup deletes what
	// the run made for itself (the extra queues and exchanges, and a test topology of its own).
	Broker(name string, extraQueues, extraExchanges []string) (*broker.Conn, *broker.Publisher, func(), error)
	// StartSim starts another TCS simulator on this machine (the pre-fix consumer's): addresses.
	StartSim(name string) (addr, admin string, err error)
	// Faults schedules the target's own faults (TCS outages are the run's).
	Faults(p *plan)
	// Heal brings back what the faults left down, once they have ended.
	Heal(ctx context.Context, p *plan)
	// WorkerLogs are the files holding every worker's log lines (JSON), every incarnation's.
	WorkerLogs() []string
	StarterBin() string
	StarterEnv() []string // for the operator commands run against the target
	// Clustered: the pre-fix consumer may never consume again after a broker node stopped, so its
	// queue does not decide when the run has settled.
	Clustered() bool
	Close()
}

// plan is what a target schedules its faults with.
type plan struct {
	ctx     context.Context // the run's: Ctrl-C ends a fault's waits
	cfg     Config
	rnd     *lockedRand
	at      func(frac float64, f func())                     // f at this fraction of the publishing window
	wait    func(frac float64)                               // until this fraction of the publishing window
	every   func(name string, every time.Duration, f func()) // f about every `every`, counted under name
	window  func(label string, from time.Duration)           // a fault's span, for the plot
	since   func() time.Duration
	counted func(name string) // one fault of this name happened
	logf    func(format string, a ...any)
	note    func(format string, a ...any) // a line for the report
	problem func(format string, a ...any) // a promise broken
}

// lockedRand is the run's random source, shared by the fault goroutines.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) Int64N(n int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Int64N(n)
}

// processes is the local stack of processes (profiles dev and cluster).
type processes struct{ st *stack.Stack }

func startProcesses(ctx context.Context, c Config, tag string, placements int64) (Target, error) {
	st, err := stack.Start(ctx, stack.Config{Dir: c.Dir, Root: c.Root, Workers: c.Workers, Placements: placements,
		TCSRate: c.TCSRate, TopologyTag: tag, Profile: c.Profile, Starters: c.Starters, AMQPURL: c.AMQPURL, RabbitNode: c.RabbitNode,
		WorkerEnv: []string{"RETRY_MAX_INTERVAL=10s", "TCS_TIMEOUT=2s", "ATTEMPT_TIMEOUT=10s"}})
	if err != nil {
		return nil, err
	}
	return &processes{st: st}, nil
}

func (p *processes) Topology() broker.Topology      { return p.st.Topology }
func (p *processes) TCSAdmin() string               { return p.st.TCSAdmin }
func (p *processes) Client() (client.Client, error) { return p.st.Client() }
func (p *processes) StarterBin() string             { return p.st.StarterBin }
func (p *processes) StarterEnv() []string           { return p.st.StarterEnv() }
func (p *processes) Clustered() bool                { return p.st.Rabbit != nil }
func (p *processes) Close()                         { p.st.Close() }
func (p *processes) Broker(name string, q, e []string) (*broker.Conn, *broker.Publisher, func(), error) {
	return p.st.Broker(name, q, e)
}

func (p *processes) StartSim(name string) (string, string, error) {
	_, addr, admin, err := p.st.StartSim(name)
	return addr, admin, err
}

func (p *processes) WorkerLogs() []string {
	var files []string
	for _, w := range p.st.Workers {
		files = append(files, w.LogFiles()...)
	}
	return files
}

// Faults: RabbitMQ stops (the app, or the node leading the record queues), the Temporal server
// restarts, workers and starters are SIGKILLed.
func (p *processes) Faults(pl *plan) {
	st, c := p.st, pl.cfg
	if c.RabbitDown > 0 && st.Rabbit != nil {
		pl.at(0.4, func() {
			from := pl.since()
			leader, err := st.Rabbit.Leader(st.Topology.PlacementQueue)
			if err != nil {
				pl.logf("cannot find the leader: %v", err)
				return
			}
			pl.logf("RabbitMQ node %s (leader of %s) stopped for %s", leader.Name, st.Topology.PlacementQueue, c.RabbitDown)
			st.Rabbit.StopNode(leader)
			time.Sleep(c.RabbitDown)
			if err := st.Rabbit.StartNode(pl.ctx, leader); err != nil {
				pl.logf("cannot start RabbitMQ node %s: %v", leader.Name, err)
			}
			pl.window("leader node down", from)
			pl.counted("rabbitmq leader node")
		})
	} else if c.RabbitDown > 0 {
		pl.at(0.4, func() {
			from := pl.since()
			pl.logf("RabbitMQ app stopped for %s", c.RabbitDown)
			if err := st.RabbitApp(false); err != nil {
				pl.logf("cannot stop RabbitMQ: %v", err)
				return
			}
			time.Sleep(c.RabbitDown)
			if err := st.RabbitApp(true); err != nil {
				pl.logf("cannot start RabbitMQ: %v", err)
			}
			pl.window("RabbitMQ down", from)
			pl.counted("rabbitmq app")
		})
	}
	if c.TemporalDown > 0 {
		pl.at(0.8, func() {
			from := pl.since()
			pl.logf("Temporal restart (down %s)", c.TemporalDown)
			st.Temporal.Stop()
			time.Sleep(c.TemporalDown)
			_ = st.Temporal.Start()
			_ = st.WaitTemporal(pl.ctx)
			pl.window("Temporal down", from)
			pl.counted("temporal")
		})
	}
	kill := func(pick func() *proc.Process) func() {
		return func() {
			pr := pick()
			pr.Kill()
			time.Sleep(time.Second + time.Duration(pl.rnd.Int64N(int64(2*time.Second))))
			_ = pr.Start()
		}
	}
	pl.every("worker (SIGKILL)", c.KillWorkerEvery, kill(func() *proc.Process { return st.Workers[pl.rnd.IntN(len(st.Workers))] }))
	pl.every("starter (SIGKILL)", c.KillStarterEvery, kill(func() *proc.Process { return st.Starters[pl.rnd.IntN(len(st.Starters))] }))
}

// Heal starts every killed process again.
func (p *processes) Heal(context.Context, *plan) {
	for _, pr := range append(append([]*proc.Process{}, p.st.Starters...), p.st.Workers...) {
		if pr.Pid() == 0 {
			_ = pr.Start()
		}
	}
}
