package main

import (
	"context"
	"flag"
	"fmt"
	"image/color"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/tis-writeback/writeback/bench/chaos"
	"github.com/tis-writeback/writeback/bench/report"
	"github.com/tis-writeback/writeback/bench/stack"
)

func runChaos(args []string) int {
	fs := flag.NewFlagSet("bench chaos", flag.ExitOnError)
	c := chaos.Config{}
	fs.IntVar(&c.Records, "records", 20000, "records to publish (placements and scans)")
	fs.Float64Var(&c.PublishRate, "rate", 40, "messages published per second")
	fs.Float64Var(&c.ScanFraction, "scans", 0.3, "fraction of scans")
	fs.Float64Var(&c.UnknownFraction, "unknown", 0.02, "fraction of records TCS does not know (dead letters by design)")
	fs.IntVar(&c.PoisonEvery, "poison-every", 200, "one poison message per N records")
	fs.Float64Var(&c.ErrorRate, "error-rate", 0.05, "fraction of TCS requests answered 503")
	fs.Float64Var(&c.TimeoutRate, "timeout-rate", 0.02, "fraction of TCS requests processed but never answered")
	outage := fs.Duration("outage", 60*time.Second, "length of each of the two full TCS outages")
	fs.DurationVar(&c.KillWorkerEvery, "kill-worker-every", 40*time.Second, "mean interval between worker SIGKILLs")
	fs.DurationVar(&c.KillStarterEvery, "kill-starter-every", 60*time.Second, "mean interval between starter SIGKILLs")
	fs.DurationVar(&c.RabbitDown, "rabbit-down", 10*time.Second, "RabbitMQ app stopped once for this long (0: never)")
	fs.DurationVar(&c.TemporalDown, "temporal-down", 5*time.Second, "dev server stopped once for this long (0: never)")
	fs.IntVar(&c.Workers, "workers", 2, "worker processes")
	fs.IntVar(&c.Starters, "starters", 1, "starter processes")
	fs.StringVar(&c.Profile, "profile", stack.ProfileDev, "dev (the CLI's dev server, the machine's RabbitMQ), cluster "+
		"(Temporal server on PostgreSQL, a three-node RabbitMQ cluster: make test-cluster) or kube (the Helm release of make deploy-up, "+
		"run inside the cluster's network namespace: make test-deploy)")
	fs.StringVar(&c.Kube.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kube: the kubeconfig make deploy-up printed")
	fs.StringVar(&c.Kube.Namespace, "namespace", "writeback", "kube: the release's namespace")
	fs.StringVar(&c.Kube.Release, "release", "writeback", "kube: the Helm release")
	fs.StringVar(&c.Kube.Chart, "chart", "deploy/helm/writeback", "kube: the chart the release is upgraded with")
	fs.StringVar(&c.Kube.RollTo, "roll-to", "", "kube: image tag and build ID the workers are rolled to mid-stream (images built beforehand)")
	fs.StringVar(&c.Kube.Containerd, "containerd", "/run/writeback-kube/containerd.sock", "kube: the node's containerd socket")
	fs.StringVar(&c.Kube.Deployment, "deployment-name", "writeback", "kube: the workers' Worker Versioning deployment name")
	fs.Float64Var(&c.TCSRate, "tcs-rate", 200, "the workers' TCS rate cap (activities/s)")
	fs.DurationVar(&c.SettleTimeout, "settle-timeout", 30*time.Minute, "how long to wait for every record to settle")
	fs.BoolVar(&c.Operator, "operator", true, "an operator's actions under the faults: tcs hold and release, a retry job resumed and cancelled mid-run, reconciled against the records")
	fs.Uint64Var(&c.Seed, "seed", 1, "random seed")
	out := fs.String("out", "BENCHMARKS.md", "report file (its chaos section is replaced)")
	_ = fs.Parse(args)
	c.Outages = []time.Duration{*outage, *outage}
	c.Log = os.Stderr
	root, _ := os.Getwd()
	c.Root = root
	dir, err := os.MkdirTemp("", "writeback-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kept := false // a failed run keeps its logs, to be read
	defer func() {
		if kept {
			fmt.Fprintf(os.Stderr, "the run's logs are kept in %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	c.Dir = dir
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	rep, err := chaos.Run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos run failed:", err)
		kept = true
		return 1
	}
	tbl := ChaosTable(rep)
	fmt.Println()
	fmt.Print(tbl.Text())
	section, plotName, title := "chaos", "bench-chaos.png", "Chaos run and incident replay"
	processFaults := fmt.Sprintf("SIGKILL of a random worker about every %s and of a starter about every %s", c.KillWorkerEvery, c.KillStarterEvery)
	rabbitFault := fmt.Sprintf("RabbitMQ's app\nstopped for %s once; the Temporal dev server (SQLite file) restarted once (down %s)", c.RabbitDown, c.TemporalDown)
	switch c.Profile {
	case stack.ProfileCluster:
		section, plotName, title = "chaos-cluster", "bench-chaos-cluster.png", "Chaos run on the production profile (make test-cluster)"
		rabbitFault = fmt.Sprintf("the RabbitMQ node leading\nthe record queues stopped for %s and started again; the Temporal server (PostgreSQL) restarted once (down %s)",
			c.RabbitDown, c.TemporalDown)
	case chaos.ProfileKube:
		section, plotName, title = "chaos-kube", "bench-chaos-kube.png", "Chaos run through the Helm chart on a local Kubernetes (make test-deploy)"
		processFaults = "on the release (the chart's defaults: 2 workers, 1 starter),\na worker pod and the starter pod deleted (SIGTERM from the kubelet), " +
			"RabbitMQ's container killed on its node and restarted by the kubelet in the same pod, and the workers rolled to build " + c.Kube.RollTo +
			" by `helm upgrade` under Worker Versioning"
		rabbitFault = "RabbitMQ and Temporal (the server v1.32.0 on PostgreSQL) run as single pods; no other fault"
	}
	plotPath := filepath.Join(filepath.Dir(*out), plotName)
	if err := ChaosPlot(rep, plotPath); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
	}
	cmdline := "bin/harness chaos " + strings.Join(args, " ")
	body := fmt.Sprintf(`## %s

Command: %s. Machine: %d cores, %s. Run took %s.
Faults: TCS 503 on %.0f%% of requests and lost answers on %.0f%% throughout; two full TCS outages of %s;
%s (faults: %s); %s; one poison message per %d records.
writeback and the pre-fix consumer (reject without requeue on any TCS error) consumed the same messages
under the same TCS fault profile, each against its own TCS simulator.

%s
Records: %d (%d placements, %d scans), %d unknown to TCS by design; %d poison messages.
writeback: %d Completed, %d DeadLettered, %d in another state; every dead letter of a known record has its
FAILED/ERRORED mark (%d without); CRITICAL lines: one dead-lettering per dead letter (%d mismatches; %d lines
repeated one by an activity re-run after a kill or restart, at-least-once); record queues left
%d; the DLQ holds %d messages = the poison messages (%d without a reason). After making every record known to
TCS, `+"`starter retry --all`"+` turned %d dead letters Completed (%d left).

%s
Result: %s

![records written to TCS over time](%s)
`, title, cmdline, runtime.NumCPU(), memTotal(), rep.Duration.Round(time.Second), c.ErrorRate*100, c.TimeoutRate*100, *outage,
		processFaults, kills(rep), rabbitFault, c.PoisonEvery,
		tbl.Markdown(), rep.Valid, rep.Placements, rep.Scans, rep.Unknown, rep.Poison,
		rep.Completed, rep.DeadLettered, rep.Other, len(rep.DeadLetteredUnmarked), len(rep.CriticalMismatch), rep.CriticalRepeats, rep.QueuesLeft,
		rep.DLQ, rep.DLQWithoutReason, rep.RetriedCompleted, rep.RetriedLeft, notes(rep), verdict(rep), plotName)
	if err := report.WriteSection(*out, section, body); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	fmt.Println(verdict(rep))
	if !rep.OK() {
		kept = true
		return 1
	}
	return 0
}

func verdict(rep *chaos.Report) string {
	if rep.OK() {
		return fmt.Sprintf("PASS — writeback lost 0 and duplicated 0; the pre-fix consumer lost %d of %d placements.", rep.Naive.Missing, rep.Naive.Published)
	}
	return "FAIL — " + strings.Join(rep.Problems[:min(5, len(rep.Problems))], "; ")
}

// ChaosTable is the side-by-side tally.
func ChaosTable(rep *chaos.Report) report.Table {
	row := func(name string, s chaos.Side) []string {
		return []string{name, fmt.Sprint(s.Published), fmt.Sprint(s.Exported), fmt.Sprint(s.Failed), fmt.Sprint(s.Missing), fmt.Sprint(s.Duplicates)}
	}
	return report.Table{
		Header: []string{"system", "placements published", "EXPORTED in TCS", "FAILED in TCS", "missing (lost)", "duplicate rows"},
		Rows:   [][]string{row("writeback", rep.Writeback), row("pre-fix consumer", rep.Naive)},
	}
}

// ChaosPlot draws records written over time with the fault windows shaded.
func ChaosPlot(rep *chaos.Report, path string) error {
	var xs, wb, nv []float64
	for _, s := range rep.Samples {
		xs = append(xs, s.At.Seconds())
		wb = append(wb, float64(s.WritebackPlacements))
		nv = append(nv, float64(s.Naive))
	}
	var spans []report.Span
	for _, w := range rep.Windows {
		spans = append(spans, report.Span{Label: w.Label, From: w.Start.Seconds(), To: w.End.Seconds()})
	}
	// Like with like: both lines count placements with their EXPORTED event in TCS (the pre-fix consumer
	// handles no scans).
	return report.Plot(path, "Placements written to TCS during the chaos run", "seconds", "placements EXPORTED in TCS",
		[]report.Series{
			{Name: "writeback", X: xs, Y: wb, Color: color.RGBA{20, 90, 200, 255}},
			{Name: "pre-fix consumer", X: xs, Y: nv, Color: color.RGBA{200, 40, 40, 255}},
		}, spans)
}

// notes lists what the target measured of its faults.
func notes(rep *chaos.Report) string {
	if len(rep.Notes) == 0 {
		return ""
	}
	return "Measured during the faults:\n- " + strings.Join(rep.Notes, "\n- ") + "\n"
}

func kills(rep *chaos.Report) string {
	var parts []string
	for k, v := range rep.Kills {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	var kb int64
	fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
	return fmt.Sprintf("%.0f GiB", float64(kb)/1024/1024)
}
