// Package stack runs writeback's real parts as separate processes that a benchmark or a chaos run
// can kill and restart: the Temporal dev server (with its database file), TCS simulators, workers,
// the starter; and stops and starts the dev profile's RabbitMQ app.
package stack

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/devserver"
	"github.com/tis-writeback/writeback/internal/proc"
	"github.com/tis-writeback/writeback/internal/rabbitnode"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// Config of a stack.
type Config struct {
	Dir        string // working directory: binaries, database, logs
	Root       string // the repository (to build the binaries and find bin/temporal)
	Workers    int
	Placements int64 // placements the simulators know (1..N)
	TCSRate    float64
	WorkerEnv  []string // extra worker settings, e.g. RETRY_MAX_INTERVAL=10s
	StarterEnv []string
	AMQPURL    string
	// RabbitNode is the dev profile's RabbitMQ node behind AMQPURL, which RabbitApp stops and starts
	// (zero: the machine's default node; the tests give a node of their own).
	RabbitNode  rabbitnode.Ref
	TopologyTag string // queues and exchanges are prefixed with it
	// Profile: ProfileDev (default) or ProfileCluster (Temporal server on PostgreSQL, three RabbitMQ
	// nodes; AMQPURL is then the cluster's).
	Profile string
	// Database names the cluster profile's Temporal databases (default: one for this stack, dropped
	// by Close; a name given here is kept, as make run-cluster keeps its data between runs).
	Database string
	Starters int // starter processes (default 1)
	// The cluster profile's Temporal tuning: history shards (0: 4) and PostgreSQL's
	// synchronous_commit=off on its databases (a commit no longer waits for the WAL flush).
	Shards      int
	AsyncCommit bool
	// Ports, when set, fix the Temporal frontend's and (dev profile) its UI's; 0 takes a free
	// frontend port and runs the dev server without its UI.
	TemporalPort, UIPort int
	// FixedPorts gives the simulator and the daemons make run's well-known ports, the defaults of
	// the operator commands: TCS 8081 (admin 8082), metrics 9464 for the first worker and 9465 for
	// the first starter (then +2 each). Otherwise every port is a free one.
	FixedPorts bool
	// TCSToken is the token the simulator accepts and the workers send (default sim.DevToken).
	TCSToken string
}

// Stack is the running system.
type Stack struct {
	Cfg               Config
	Temporal          *proc.Process
	TemporalAddr      string
	TCS               *proc.Process // writeback's TCS
	TCSAddr, TCSAdmin string
	Workers           []*proc.Process
	Starter           *proc.Process   // the first of Starters
	Starters          []*proc.Process //
	Topology          broker.Topology
	StarterBin        string
	// The cluster profile's servers (nil on the dev profile).
	Rabbit       *RabbitCluster
	Server       *TemporalServer
	dropDatabase string
	procs        []*proc.Process
}

// make run's well-known ports (Config.FixedPorts): the defaults of the operator commands.
const (
	PortTCS            = 8081
	PortTCSAdmin       = 8082
	PortWorkerMetrics  = 9464 // the first worker's; the next ones +2 each
	PortStarterMetrics = 9465 // the first starter's; the next ones +2 each
)

// WellKnownPorts are the ports a stack with FixedPorts takes, for a check before it starts.
func (c Config) WellKnownPorts() []int {
	ports := []int{c.TemporalPort, c.UIPort, PortTCS, PortTCSAdmin}
	for i := 0; i < c.Workers; i++ {
		ports = append(ports, PortWorkerMetrics+2*i)
	}
	for i := 0; i < max(c.Starters, 1); i++ {
		ports = append(ports, PortStarterMetrics+2*i)
	}
	return ports
}

// port is 127.0.0.1 with make run's well-known port when FixedPorts is set and wellKnown is not 0,
// else with a free one.
func (s *Stack) port(wellKnown int) string {
	if !s.Cfg.FixedPorts || wellKnown == 0 {
		wellKnown = freePort()
	}
	return "127.0.0.1:" + strconv.Itoa(wellKnown)
}

func (s *Stack) token() string { return cmp.Or(s.Cfg.TCSToken, sim.DevToken) }

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Build compiles worker, starter and tcssim into dir.
func Build(root, dir string) error {
	for _, pkg := range []string{"worker", "starter", "tcssim"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, pkg), "./"+pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./%s: %v\n%s", pkg, err, out)
		}
	}
	return nil
}

// Bare builds the binaries into c.Dir and starts nothing: a run against a system that runs elsewhere
// (the local Kubernetes) starts its own simulators with StartSim and runs the operator commands.
func Bare(c Config) (*Stack, error) {
	if err := os.MkdirAll(filepath.Join(c.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if err := Build(c.Root, c.Dir); err != nil {
		return nil, err
	}
	return &Stack{Cfg: c, Topology: broker.DefaultTopology().WithPrefix(c.TopologyTag), StarterBin: filepath.Join(c.Dir, "starter")}, nil
}

// Start builds and starts everything; on an error it stops what it started.
func Start(ctx context.Context, c Config) (st *Stack, err error) {
	if err := os.MkdirAll(filepath.Join(c.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if err := Build(c.Root, c.Dir); err != nil {
		return nil, err
	}
	s := &Stack{Cfg: c, Topology: broker.DefaultTopology().WithPrefix(c.TopologyTag), StarterBin: filepath.Join(c.Dir, "starter")}
	defer func() {
		if err != nil {
			s.Close() // nothing left behind: processes, RabbitMQ nodes, test databases
		}
	}()
	logs := filepath.Join(c.Dir, "logs")
	if err := s.startServers(ctx, logs); err != nil {
		return nil, err
	}
	c = s.Cfg
	if s.TCS, s.TCSAddr, s.TCSAdmin, err = s.StartSim("tcs"); err != nil {
		return nil, err
	}
	for i := 0; i < c.Workers; i++ {
		if _, err := s.AddWorker(); err != nil {
			return nil, err
		}
	}
	for i := 0; i < max(c.Starters, 1); i++ {
		name := "starter"
		if i > 0 {
			name = fmt.Sprintf("starter%d", i)
		}
		p := &proc.Process{Name: name, Bin: s.StarterBin, Args: []string{"consume"}, LogDir: logs,
			Env: append(append(s.commonEnv(), s.TopologyEnv()...), append([]string{"METRICS_ADDR=" + s.port(PortStarterMetrics+2*i)}, c.StarterEnv...)...)}
		if err := s.add(p); err != nil {
			return nil, err
		}
		s.Starters = append(s.Starters, p)
	}
	s.Starter = s.Starters[0]
	return s, nil
}

// startServers starts Temporal and (on the cluster profile) RabbitMQ for the profile.
func (s *Stack) startServers(ctx context.Context, logs string) error {
	c := &s.Cfg
	switch c.Profile {
	case "", ProfileDev:
		if c.AMQPURL == "" {
			c.AMQPURL = "amqp://guest:guest@localhost:5672/"
		}
		tport := cmp.Or(c.TemporalPort, freePort())
		s.TemporalAddr = fmt.Sprintf("127.0.0.1:%d", tport)
		targs := devserver.ProcessArgs(tport, c.UIPort, filepath.Join(c.Dir, "temporal.db"))
		s.Temporal = &proc.Process{Name: "temporal", Bin: filepath.Join(c.Root, "bin", "temporal"), Args: targs, LogDir: logs}
		if err := s.add(s.Temporal); err != nil {
			return err
		}
		return s.WaitTemporal(ctx)
	case ProfileCluster:
		name := filepath.Base(c.Dir)
		if c.Database == "" { // a test stack: node names of its own
			suffix := make([]byte, 3)
			_, _ = rand.Read(suffix)
			name += "-" + hex.EncodeToString(suffix)
		}
		rc, err := StartRabbitCluster(ctx, filepath.Join(c.Dir, "rabbit"), name, 3,
			filepath.Join(c.Root, "deploy", "rabbitmq", "rabbitmq.conf"))
		if err != nil {
			return err
		}
		s.Rabbit = rc
		c.AMQPURL = rc.URL()
		db := c.Database
		if db == "" {
			suffix := make([]byte, 4)
			_, _ = rand.Read(suffix)
			db = "wbtest_" + hex.EncodeToString(suffix) // a run of its own, never a crashed run's data
			s.dropDatabase = db
		}
		srv, err := StartTemporalServer(ctx, TemporalServerConfig{Root: c.Root, LogDir: logs, Database: db, FrontendPort: c.TemporalPort,
			Shards: c.Shards, AsyncCommit: c.AsyncCommit})
		if err != nil {
			return err
		}
		s.Server, s.Temporal, s.TemporalAddr = srv, srv.Proc, srv.Address
		s.procs = append(s.procs, srv.Proc)
		return nil
	default:
		return fmt.Errorf("unknown profile %q: %s or %s", c.Profile, ProfileDev, ProfileCluster)
	}
}

func (s *Stack) add(p *proc.Process) error {
	if err := p.Start(); err != nil {
		return err
	}
	s.procs = append(s.procs, p)
	return nil
}

func (s *Stack) commonEnv() []string {
	return []string{"TEMPORAL_ADDRESS=" + s.TemporalAddr, "AMQP_URL=" + s.Cfg.AMQPURL, "LOG_LEVEL=info"}
}

// TopologyEnv names this stack's queues for a starter process.
func (s *Stack) TopologyEnv() []string {
	if s.Cfg.TopologyTag == "" {
		return nil // the default names
	}
	t := s.Topology
	return []string{"WRITEBACK_EXCHANGE=" + t.Exchange, "WRITEBACK_PLACEMENT_QUEUE=" + t.PlacementQueue,
		"WRITEBACK_SCAN_QUEUE=" + t.ScanQueue, "WRITEBACK_DLX=" + t.DLX, "WRITEBACK_DLQ=" + t.DLQ}
}

// StarterEnv is the environment for running starter commands (retry, …) against this stack.
func (s *Stack) StarterEnv() []string {
	return append(append(s.commonEnv(), s.TopologyEnv()...), "TCS_URL=http://"+s.TCSAddr, "TCS_TOKEN="+s.token())
}

// StartSim starts a TCS simulator process.
func (s *Stack) StartSim(name string) (*proc.Process, string, string, error) {
	addr, admin := s.port(PortTCS), s.port(PortTCSAdmin)
	if s.TCS != nil { // a second simulator (the chaos run's naive consumer's) never takes make run's ports
		addr, admin = s.port(0), s.port(0)
	}
	p := &proc.Process{Name: name, Bin: filepath.Join(s.Cfg.Dir, "tcssim"), LogDir: filepath.Join(s.Cfg.Dir, "logs"),
		Args: []string{"--addr", addr, "--admin-addr", admin, "--placements", strconv.FormatInt(s.Cfg.Placements, 10),
			"--token", s.token()}}
	if err := s.add(p); err != nil {
		return nil, "", "", err
	}
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + admin + "/admin/stats"); err == nil {
			resp.Body.Close()
			return p, addr, admin, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, "", "", fmt.Errorf("simulator %s did not start", name)
}

// AddWorker starts one more worker process.
func (s *Stack) AddWorker() (*proc.Process, error) {
	env := append(s.commonEnv(), "TCS_URL=http://"+s.TCSAddr, "TCS_TOKEN="+s.token(),
		"METRICS_ADDR="+s.port(PortWorkerMetrics+2*len(s.Workers)), fmt.Sprintf("TCS_RATE=%g", s.Cfg.TCSRate), "STOP_TIMEOUT=10s")
	env = append(env, s.Cfg.WorkerEnv...)
	p := &proc.Process{Name: fmt.Sprintf("worker%d", len(s.Workers)), Bin: filepath.Join(s.Cfg.Dir, "worker"), Env: env,
		LogDir: filepath.Join(s.Cfg.Dir, "logs")}
	if err := s.add(p); err != nil {
		return nil, err
	}
	s.Workers = append(s.Workers, p)
	return p, nil
}

// WaitTemporal waits until the Temporal server answers.
func (s *Stack) WaitTemporal(ctx context.Context) error {
	return temporalclient.WaitHealthy(ctx, s.TemporalAddr, 60*time.Second)
}

func (s *Stack) dial() (client.Client, error) { return DialTemporal(s.TemporalAddr) }

// DialTemporal connects a client whose SDK log is discarded.
func DialTemporal(addr string) (client.Client, error) {
	return client.Dial(client.Options{HostPort: addr,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
}

// Client dials the dev server.
func (s *Stack) Client() (client.Client, error) { return s.dial() }

// SetFaults replaces the simulator's faults.
func SetFaults(admin string, f sim.Faults) error {
	b, _ := json.Marshal(f)
	resp, err := http.Post("http://"+admin+"/admin/faults", "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// AdminGet decodes a simulator admin answer.
func AdminGet(admin, path string, v any) error {
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// AdminPost posts JSON to a simulator admin endpoint.
func AdminPost(admin, path string, v any) error {
	b, _ := json.Marshal(v)
	resp, err := http.Post("http://"+admin+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// RabbitApp stops (false) or starts (true) the dev profile's RabbitMQ application: on Cfg.RabbitNode,
// or the machine's default node if none is named.
func (s *Stack) RabbitApp(start bool) error {
	verb := "stop_app"
	if start {
		verb = "start_app"
	}
	if s.Cfg.RabbitNode.Name != "" {
		_, err := s.Cfg.RabbitNode.Ctl(verb)
		return err
	}
	out, err := exec.Command("rabbitmqctl", verb).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl %s: %v: %s", verb, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RSS is a process's resident memory in bytes (Linux).
func RSS(pid int) (int64, error) { return procStatus(pid, "VmRSS:") }

// PeakRSS is a process's peak resident memory in bytes (Linux VmHWM).
func PeakRSS(pid int) (int64, error) { return procStatus(pid, "VmHWM:") }

func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s", field)
}

// Stopped names a process of the stack that has ended by itself ("" if none has).
func (s *Stack) Stopped() string {
	for _, p := range s.procs {
		if p.Pid() != 0 && p.Exited() {
			return p.Name
		}
	}
	return ""
}

// Close stops everything, newest first; a cluster profile's test databases are dropped.
func (s *Stack) Close() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Stop()
	}
	if s.Rabbit != nil {
		s.Rabbit.Close()
	}
	if s.dropDatabase != "" {
		_ = DropTemporalDatabases(s.Cfg.Root, s.dropDatabase)
	}
}

// Broker connects to RabbitMQ with a confirming publisher and declares this stack's topology;
// cleanup deletes the stack's queues and exchanges, and the extra ones named.
func (s *Stack) Broker(name string, extraQueues, extraExchanges []string) (*broker.Conn, *broker.Publisher, func(), error) {
	t := s.Topology
	return ConnectBroker(s.Cfg.AMQPURL, t, name, append([]string{t.PlacementQueue, t.ScanQueue, t.DLQ}, extraQueues...),
		append([]string{t.Exchange, t.DLX}, extraExchanges...))
}

// ConnectBroker connects to RabbitMQ at url with a confirming publisher and declares topology t (on a
// broker where it exists, that checks its arguments); cleanup deletes the queues and exchanges named.
func ConnectBroker(url string, t broker.Topology, name string, queues, exchanges []string) (*broker.Conn, *broker.Publisher, func(), error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, pub, err := broker.Connect(broker.ConnConfig{URL: url, RetryInterval: time.Second, RPCTimeout: 10 * time.Second, Name: name}, quiet, 5, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := t.Declare(conn, quiet); err != nil {
		pub.Close()
		conn.Close()
		return nil, nil, nil, err
	}
	cleanup := func() {
		if ch, err := conn.Channel(); err == nil {
			for _, q := range queues {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
			for _, e := range exchanges {
				_ = ch.ExchangeDelete(e, false, false)
			}
			_ = ch.Close()
		}
		_ = pub.Close()
		_ = conn.Close()
	}
	return conn, pub, cleanup, nil
}
