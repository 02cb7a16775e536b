// Command testrabbit runs make test's RabbitMQ node: a node of its own (package rabbitnode) under
// --dir, with the settings of deploy/rabbitmq/rabbitmq.conf. Once the node runs it writes the
// environment that names it to the tests (AMQP_URL, WRITEBACK_RABBIT_NODE, WRITEBACK_RABBIT_HOME)
// into --env-file; on SIGTERM or SIGINT, or when the process that started it is gone, it stops the
// node and removes --dir.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tis-writeback/writeback/internal/rabbitnode"
)

func main() {
	dir := flag.String("dir", "", "directory of the node (removed when it stops)")
	name := flag.String("name", fmt.Sprintf("writeback-test-%d@localhost", os.Getppid()), "Erlang node name")
	settings := flag.String("settings", "deploy/rabbitmq/rabbitmq.conf", "rabbitmq.conf whose settings the node gets")
	envFile := flag.String("env-file", "", "where to write the environment naming the node, once it runs")
	flag.Parse()
	if *dir == "" || *envFile == "" {
		fmt.Fprintln(os.Stderr, "usage: testrabbit --dir DIR --env-file FILE [--name NODE] [--settings rabbitmq.conf]")
		os.Exit(2)
	}
	os.Exit(run(*dir, *name, *settings, *envFile))
}

func run(dir, name, settings, envFile string) int {
	parent := os.Getppid()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-sigs; cancel() }()
	defer os.RemoveAll(dir)

	nd, err := rabbitnode.StartSingle(ctx, dir, name, settings, true)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testrabbit: %v\n", err)
		return 1
	}
	defer nd.Stop()
	tmp := envFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(nd.Env(), "\n")+"\n"), 0o644); err == nil {
		err = os.Rename(tmp, envFile)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testrabbit: %v\n", err)
		return 1
	}
	fmt.Printf("RabbitMQ node %s for the tests on 127.0.0.1:%d (data and logs in %s)\n", nd.Name, nd.Port, filepath.Clean(dir))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-tick.C:
			if os.Getppid() != parent { // make test ended without stopping us
				return 0
			}
			if nd.Proc.Exited() {
				fmt.Fprintf(os.Stderr, "testrabbit: RabbitMQ node %s ended by itself (log: %s)\n", nd.Name, strings.Join(nd.Proc.LogFiles(), ", "))
				return 1
			}
		}
	}
}
