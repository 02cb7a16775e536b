package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tis-writeback/writeback/bench/report"
	"github.com/tis-writeback/writeback/bench/stack"
	"github.com/tis-writeback/writeback/contract"
)

// runBodies measures the starter's memory while oversized bodies pass through it: each is poison
// (over 64 KiB) and moves to the DLQ whole, so nothing is lost; the starter holds at most
// prefetch of them at once.
func runBodies(args []string) int {
	fs := flag.NewFlagSet("bench bodies", flag.ExitOnError)
	n := fs.Int("n", 12, "bodies to publish")
	size := fs.Int("size-mb", 8, "size of each body in MiB")
	prefetches := fs.String("prefetch", "100,4", "starter prefetch settings to measure, comma-separated")
	out := fs.String("out", "BENCHMARKS.md", "report file (its bodies section is replaced)")
	_ = fs.Parse(args)
	root, _ := os.Getwd()
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05")+" "+f+"\n", a...) }
	var rows []string
	for _, pf := range strings.Split(*prefetches, ",") {
		peak, took, err := measureBodies(root, *n, *size, pf, logf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bodies run failed:", err)
			return 1
		}
		rows = append(rows, fmt.Sprintf("| %s | %d × %d MiB | %.0f MiB | %.1f s |", pf, *n, *size, float64(peak)/(1<<20), took.Seconds()))
		logf("prefetch %s: peak RSS %.0f MiB", pf, float64(peak)/(1<<20))
	}
	body := fmt.Sprintf(`## Large bodies

Command: bin/harness bodies%s. Oversized bodies (the contract's limit, 64 KiB) are poison: each moves to the
DLQ whole, with its reason, so nothing is lost. Peak RSS of the starter process (VmHWM) while they
pass; it grows with prefetch × body size, which is why deploy/ caps RabbitMQ's max_message_size at
1 MiB (prefetch 100 × 1 MiB at most).

| PREFETCH | bodies | starter peak RSS | all in the DLQ after |
|---|---|---|---|
%s
`, strings.TrimRight(" "+strings.Join(args, " "), " "), strings.Join(rows, "\n"))
	if err := report.WriteSection(*out, "bodies", body); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	fmt.Print(body)
	return 0
}

func measureBodies(root string, n, sizeMB int, prefetch string, logf func(string, ...any)) (int64, time.Duration, error) {
	dir, err := os.MkdirTemp("", "writeback-bodies-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := stack.Start(ctx, stack.Config{Dir: dir, Root: root, Placements: 10, TCSRate: 100,
		TopologyTag: fmt.Sprintf("wbbodies-%d", time.Now().UnixNano()%1e9), StarterEnv: []string{"PREFETCH=" + prefetch}})
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	conn, pub, cleanup, err := s.Broker("writeback-bench-bodies", nil, nil)
	if err != nil {
		return 0, 0, err
	}
	defer cleanup()
	time.Sleep(2 * time.Second) // the starter is consuming
	start := time.Now()
	payload := []byte(`{"placementId":1,"filename":"` + strings.Repeat("x", sizeMB<<20) + `"}`)
	for i := 0; i < n; i++ {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := pub.Publish(pctx, s.Topology.Exchange, contract.RoutingKeyPlacementExported, amqp.Publishing{Body: payload})
		cancel()
		if err != nil {
			return 0, 0, fmt.Errorf("publish: %w", err)
		}
	}
	logf("published %d × %d MiB", n, sizeMB)
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		ch, err := conn.Channel()
		if err == nil {
			q, qerr := ch.QueueDeclarePassive(s.Topology.DLQ, true, false, false, false, nil)
			_ = ch.Close()
			if qerr == nil && q.Messages == n {
				took := time.Since(start)
				peak, err := stack.PeakRSS(s.Starter.Pid())
				return peak, took, err
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("the %d bodies did not all reach the DLQ within 5 minutes", n)
}
