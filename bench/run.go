package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tis-writeback/writeback/bench/stack"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/demo"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// runDemo is `make run` (the dev profile) and `make run-cluster` (the production profile): the whole
// system on this machine with a demo batch, until Ctrl-C or until a part of it stops by itself.
// The dev profile keeps Temporal's database in .data/; the cluster profile keeps its PostgreSQL
// databases and starts a fresh three-node RabbitMQ cluster each time.
func runDemo(args []string) int {
	fs := flag.NewFlagSet("bench run", flag.ExitOnError)
	profile := fs.String("profile", stack.ProfileDev, "dev (Temporal dev server, the local RabbitMQ) or cluster (Temporal server on PostgreSQL, three RabbitMQ nodes)")
	dir := fs.String("dir", "", "working directory: binaries, Temporal's data, logs (default .data, or .data/cluster)")
	demoN := fs.Int("demo", envInt("DEMO", 200), "demo records to publish (0: none; env DEMO)")
	db := fs.String("database", "writeback_temporal", "cluster profile: Temporal's PostgreSQL database (and <name>_visibility)")
	tport := fs.Int("temporal-port", 7233, "Temporal frontend port")
	uiPort := fs.Int("ui-port", 8233, "Temporal UI port")
	_ = fs.Parse(args)
	cluster := *profile == stack.ProfileCluster
	if !cluster && *profile != stack.ProfileDev {
		fmt.Fprintf(os.Stderr, "--profile must be %s or %s, not %q\n", stack.ProfileDev, stack.ProfileCluster, *profile)
		return 2
	}
	root, _ := os.Getwd()
	defaultDir := ".data"
	if cluster {
		defaultDir = ".data/cluster"
	}
	abs, err := filepath.Abs(cmp.Or(*dir, defaultDir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := stack.Config{Dir: abs, Root: root, Workers: 1, Starters: 1, Placements: demo.SeededPlacements, TCSRate: 100,
		Profile: *profile, TemporalPort: *tport, UIPort: *uiPort, FixedPorts: true,
		TCSToken: cmp.Or(os.Getenv("TCS_TOKEN"), sim.DevToken), AMQPURL: os.Getenv("AMQP_URL")}
	if cluster {
		cfg.Workers, cfg.Starters, cfg.Database, cfg.AMQPURL = 2, 2, *db, ""
	}
	if msg := preflight(cfg); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cluster {
		fmt.Println("starting the production profile (Temporal server on PostgreSQL, three RabbitMQ nodes; about 30 s)...")
	} else {
		fmt.Println("building and starting (Temporal dev server, TCS simulator, worker, starter)...")
	}
	st, err := stack.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	defer func() { fmt.Println("\nstopping..."); st.Close() }()
	if cluster { // the dev server serves its own UI; the server's is a process of its own
		ui := exec.Command(filepath.Join(root, "bin", "temporal-ui-server"), "--root", root, "--config", "deploy/temporal/ui", "--env", "production", "start")
		ui.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+st.TemporalAddr, "TEMPORAL_UI_PORT="+strconv.Itoa(*uiPort))
		uiLog, _ := os.Create(filepath.Join(abs, "logs", "temporal-ui.log"))
		ui.Stdout, ui.Stderr = uiLog, uiLog
		if err := ui.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "Temporal UI:", err)
		} else {
			defer func() { _ = ui.Process.Signal(syscall.SIGTERM); _ = ui.Wait() }()
		}
	}
	if *demoN > 0 {
		pub := exec.Command(st.StarterBin, "publish", "--demo", strconv.Itoa(*demoN))
		pub.Env = append(os.Environ(), st.StarterEnv()...)
		if out, err := pub.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "demo publish failed: %v\n%s", err, out)
		}
	}
	banner(st, cluster, *uiPort, *db, filepath.Join(abs, "logs"))
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
			if name := st.Stopped(); name != "" {
				fmt.Fprintf(os.Stderr, "%s stopped by itself: see %s\n", name, filepath.Join(abs, "logs"))
				return 1
			}
		}
	}
}

// preflight says what stops a run before anything starts: a port in use, or (dev profile) no RabbitMQ.
func preflight(c stack.Config) string {
	for _, p := range c.WellKnownPorts() {
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err != nil {
			return fmt.Sprintf("port %d is already in use: is another make run still going?", p)
		} else {
			ln.Close()
		}
	}
	if c.Profile == stack.ProfileCluster {
		return ""
	}
	u, err := url.Parse(cmp.Or(c.AMQPURL, "amqp://guest:guest@localhost:5672/"))
	if err != nil {
		return "AMQP_URL is not a URL"
	}
	hostPort := net.JoinHostPort(u.Hostname(), cmp.Or(u.Port(), "5672"))
	if conn, err := net.DialTimeout("tcp", hostPort, 2*time.Second); err != nil {
		return fmt.Sprintf(`RabbitMQ is not reachable at %s.
Start one, e.g.:  rabbitmq-server -detached     (Debian: apt-get install rabbitmq-server)
or point AMQP_URL at yours, then run make run again.`, hostPort)
	} else {
		conn.Close()
	}
	return ""
}

func banner(st *stack.Stack, cluster bool, uiPort int, db, logs string) {
	rel, _ := filepath.Rel(st.Cfg.Root, logs)
	fmt.Printf("\n  writeback is running")
	if cluster {
		fmt.Printf(" on the production profile.\n  Temporal         %s (bin/temporal-server, PostgreSQL databases %s and %s_visibility)\n", st.TemporalAddr, db, db)
		for _, n := range st.Rabbit.Nodes {
			fmt.Printf("  RabbitMQ node    %s  amqp://127.0.0.1:%d\n", n.Name, n.Port)
		}
	} else {
		fmt.Printf(".\n")
	}
	fmt.Printf(`  Temporal UI      http://localhost:%d/namespaces/default/workflows
  Dead letters     http://localhost:%d/namespaces/default/workflows?query=WritebackState%%3D%%22DeadLettered%%22
  Worker metrics   http://127.0.0.1:%d/metrics     Starter metrics  http://127.0.0.1:%d/metrics
  TCS simulator    http://%s (token: $TCS_TOKEN, %s unless you set it), admin http://%s/admin/stats
  Logs             %s/   (CRITICAL lines: grep CRITICAL %s/worker*.log)
`, uiPort, uiPort, stack.PortWorkerMetrics, stack.PortStarterMetrics, st.TCSAddr, sim.DevToken, st.TCSAdmin, rel, rel)
	if cluster {
		fmt.Printf("  The operator commands below need the cluster's brokers:\n    export AMQP_URL=%s\n", st.Cfg.AMQPURL)
	}
	fmt.Printf(`
  The demo's dead letters are records TCS does not know. To see them through:
    bin/starter deadletters                                       # grouped by cause, with the commands
    curl -X POST %s/admin/known -d '{"all":true}'          # "fix" TCS: every record known
    bin/starter retry --group tcs-404 --reason "records created" --by you   # a job: canary first
    bin/starter history --workflow-id placement-esr/…             # one record's story
    bin/starter tcs status                                        # TCS mode and cap for every worker
  Start one by hand:    bin/temporal workflow start --type %s --task-queue %s \
                          --workflow-id %s \
                          --input '{"placementId":101,"positionNumber":1,"positionId":2,"filename":"A.DAT","exportedAt":"2021-07-28T13:10:00Z"}'

  Ctrl-C stops all of it.
`, st.TCSAdmin, contract.KindPlacement.Spec().WorkflowType, contract.TaskQueue, contract.PlacementWorkflowID(101, "A.DAT"))
	if cluster {
		fmt.Println("  (PostgreSQL keeps the Temporal databases.)")
	}
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}
