package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/tis-writeback/writeback/bench/stack"
)

// runCluster is `make run-cluster`: the demo of `make run` on the production profile — a Temporal
// server on PostgreSQL with its UI, a three-node RabbitMQ cluster, the TCS simulator, two workers and
// two starters — until Ctrl-C. Temporal's databases are kept between runs (like make run's .data/);
// the RabbitMQ cluster starts fresh each time.
func runCluster(args []string) int {
	fs := flag.NewFlagSet("bench run-cluster", flag.ExitOnError)
	dir := fs.String("dir", ".data/cluster", "working directory: binaries, RabbitMQ nodes, logs")
	demo := fs.Int("demo", 200, "demo records to publish (0: none)")
	db := fs.String("database", "writeback_temporal", "Temporal's PostgreSQL database (and <name>_visibility)")
	tport := fs.Int("temporal-port", 7233, "Temporal frontend port")
	uiPort := fs.Int("ui-port", 8233, "Temporal UI port")
	_ = fs.Parse(args)
	root, _ := os.Getwd()
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("starting the production profile (Temporal server on PostgreSQL, three RabbitMQ nodes; about 30 s)...")
	st, err := stack.Start(ctx, stack.Config{Dir: abs, Root: root, Workers: 2, Starters: 2, Placements: 100000, TCSRate: 100,
		Profile: stack.ProfileCluster, Database: *db, TemporalPort: *tport})
	if err != nil {
		fmt.Fprintln(os.Stderr, "run-cluster:", err)
		return 1
	}
	defer st.Close()
	ui := exec.Command(filepath.Join(root, "bin", "temporal-ui-server"), "--root", root, "--config", "deploy/temporal/ui", "--env", "production", "start")
	ui.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+st.TemporalAddr, "TEMPORAL_UI_PORT="+strconv.Itoa(*uiPort))
	uiLog, _ := os.Create(filepath.Join(abs, "logs", "temporal-ui.log"))
	ui.Stdout, ui.Stderr = uiLog, uiLog
	if err := ui.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "Temporal UI:", err)
	} else {
		defer func() { _ = ui.Process.Signal(syscall.SIGTERM); _ = ui.Wait() }()
	}
	if *demo > 0 {
		pub := exec.Command(st.StarterBin, "publish", "--demo", strconv.Itoa(*demo))
		pub.Env = append(os.Environ(), st.StarterEnv()...)
		if out, err := pub.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "demo publish failed: %v\n%s", err, out)
		}
	}
	nodes := ""
	for _, n := range st.Rabbit.Nodes {
		nodes += fmt.Sprintf("\n    %s  amqp://127.0.0.1:%d", n.Name, n.Port)
	}
	fmt.Printf(`
  writeback is running on the production profile.
  Temporal UI      http://localhost:%d/namespaces/default/workflows
  Temporal         %s (server v1.32.0, PostgreSQL databases %s and %s_visibility)
  RabbitMQ nodes%s
  TCS simulator    http://%s (token dev-token), admin http://%s/admin/stats
  Logs             %s
  Operator commands: export %s
                     then go run ./starter deadletters | retry … | tcs status (as with make run)

  Ctrl-C stops all of it (PostgreSQL keeps the Temporal databases).
`, *uiPort, st.TemporalAddr, *db, *db, nodes, st.TCSAddr, st.TCSAdmin, filepath.Join(abs, "logs"),
		"TEMPORAL_ADDRESS="+st.TemporalAddr+" AMQP_URL="+st.Cfg.AMQPURL+" TCS_URL=http://"+st.TCSAddr+" TCS_TOKEN=dev-token")
	<-ctx.Done()
	fmt.Println("\nstopping...")
	return 0
}
