package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tis-writeback/writeback/bench/report"
	"github.com/tis-writeback/writeback/bench/speed"
	"github.com/tis-writeback/writeback/bench/stack"
)

func runSpeed(args []string) int {
	fs := flag.NewFlagSet("bench speed", flag.ExitOnError)
	c := speed.Config{}
	fs.IntVar(&c.CeilingN, "ceiling", 2000, "bare workflows for the ceiling")
	fs.IntVar(&c.P1N, "p1", 2000, "records for P1 (end-to-end records/s)")
	fs.IntVar(&c.P2Pending, "p2-pending", 10000, "records pending during the P2 outage (0: skip P2)")
	fs.DurationVar(&c.P2Outage, "p2-outage", 5*time.Minute, "length of the P2 TCS outage")
	fs.IntVar(&c.P3Parked, "p3-parked", 10000, "parked dead letters for P3 (0: skip)")
	fs.IntVar(&c.P4N, "p4", 500, "records for P4 (publish → started latency at half of P1)")
	fs.Float64Var(&c.P5Rate, "p5-rate", 100, "P5: signals/s of a retry job over P3's dead letters once TCS knows them (0: skip)")
	fs.Float64Var(&c.TCSRate, "tcs-rate", 100, "the worker's TCS rate cap (activities/s)")
	out := fs.String("out", "BENCHMARKS.md", "report file (its speed section is replaced)")
	profiles := fs.Bool("profiles", false, "ceiling, P1 and P4 on the dev server and on the production profile's Temporal "+
		"server with each tuning, side by side (its own section)")
	_ = fs.Parse(args)
	root, _ := os.Getwd()
	dir, err := os.MkdirTemp("", "writeback-speed-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	c.Root, c.Dir = root, dir
	c.Log = func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05")+" "+f+"\n", a...) }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *profiles {
		return runProfiles(ctx, c, args, *out)
	}
	r, err := speed.Run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "speed run failed:", err)
		return 1
	}
	tbl := SpeedTable(r)
	fmt.Println()
	fmt.Print(tbl.Text())
	body := fmt.Sprintf(`## Speed

Command: bin/harness speed %s (make bench). Machine: %d cores, %s; one worker process, one starter process,
the dev server with a SQLite file in WAL mode, RabbitMQ 3.10, the TCS simulator — all on this machine.

%s
History events per first-try record: placement %d, scan %d; the bare shape %d.
`, strings.Join(args, " "), runtime.NumCPU(), memTotal(), tbl.Markdown(), r.EventsPlacement, r.EventsScan, r.EventsBare)
	if err := report.WriteSection(*out, "speed", body); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return 0
}

func goal(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// SpeedTable lists each figure against its goal.
func SpeedTable(r *speed.Result) report.Table {
	rows := [][]string{
		{"ceiling: bare workflows (1 no-op activity)", fmt.Sprintf("%.1f workflows/s (%d)", r.Ceiling, r.Cfg.CeilingN), "—", ""},
		{"P1: publish → written in TCS", fmt.Sprintf("%.1f records/s (%d)", r.P1, r.Cfg.P1N), "≥ 1.0 × ceiling (aim 1.5 ×)",
			fmt.Sprintf("%s × ceiling: %s", report.Pct(r.P1, r.Ceiling), goal(r.P1 >= r.Ceiling))},
		{"P4: publish → workflow started", fmt.Sprintf("p50 %s, p99 %s at %.1f/s (%d)", r.P4p50.Round(time.Millisecond), r.P4p99.Round(time.Millisecond), r.P4Rate, r.Cfg.P4N),
			"p99 ≤ 250 ms", goal(r.P4p99 <= 250*time.Millisecond)},
	}
	if r.Cfg.P3Parked > 0 {
		rows = append(rows, []string{"P3: worker RSS with parked dead letters", fmt.Sprintf("%.0f MB with %d parked (%.0f MB before)", mb(r.P3RSS), r.Cfg.P3Parked, mb(r.P3Baseline)),
			"≤ 150 MB at 10,000", goal(mb(r.P3RSS) <= 150)})
	}
	if r.Cfg.P5Rate > 0 && r.P5Job != "" {
		rows = append(rows, []string{"P5: retry job over the parked dead letters", fmt.Sprintf("%d of %d completed in %s at --rate %.0f; %d runs (continue-as-new), at most %d history events a run",
			r.P5Completed, r.P5Records, r.P5Took.Round(time.Second), r.Cfg.P5Rate, r.P5Runs, r.P5MaxEvents),
			"all completed; history bounded", goal(r.P5Completed == r.P5Records && r.P5MaxEvents < 10000)})
	}
	if r.Cfg.P2Pending > 0 {
		rows = append(rows, []string{"P2: drain after a TCS outage", fmt.Sprintf("%s for %d pending after a %s outage; peak %.0f TCS updates/s (%.0f requests/s)",
			r.P2Drain.Round(time.Second), r.Cfg.P2Pending, r.Cfg.P2Outage, r.P2PeakActivities, r.P2PeakRequests),
			fmt.Sprintf("≤ %s; cap %.0f/s never exceeded", r.P2Goal.Round(time.Second), r.Cfg.TCSRate),
			goal(r.P2Drain <= r.P2Goal && r.P2PeakActivities <= r.Cfg.TCSRate*1.05)})
	}
	return report.Table{Header: []string{"measure", "result", "goal", "verdict"}, Rows: rows}
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// profileVariant is one server set-up the profiles comparison runs.
type profileVariant struct {
	name, why   string
	profile     string
	shards      int
	asyncCommit bool
}

var profileVariants = []profileVariant{
	{"dev server (SQLite, WAL)", "make run's server", stack.ProfileDev, 0, false},
	{"Temporal v1.32.0 on PostgreSQL, 4 shards", "the production profile as configured (deploy/temporal)", stack.ProfileCluster, 4, false},
	{"… + synchronous_commit=off", "a commit does not wait for the WAL flush (a crash may lose the last ~0.6 s of Temporal's commits, never corrupt them)", stack.ProfileCluster, 4, true},
	{"… + 16 shards", "more history shards: more parallel transactions", stack.ProfileCluster, 16, true},
}

// runProfiles measures the ceiling, P1 and P4 on each server set-up, one after the other, and writes
// them side by side.
func runProfiles(ctx context.Context, base speed.Config, args []string, out string) int {
	base.P2Pending, base.P3Parked = 0, 0
	tbl := report.Table{Header: []string{"Temporal server", "ceiling (workflows/s)", "P1 (records/s)", "P4 started p50 / p99", "what it changes"}}
	for i, v := range profileVariants {
		c := base
		c.Profile, c.Shards, c.AsyncCommit = v.profile, v.shards, v.asyncCommit
		c.Dir = filepath.Join(base.Dir, fmt.Sprintf("variant%d", i))
		c.Log("profile %q", v.name)
		r, err := speed.Run(ctx, c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "speed run on %s failed: %v\n", v.name, err)
			return 1
		}
		tbl.Rows = append(tbl.Rows, []string{v.name, fmt.Sprintf("%.1f", r.Ceiling), fmt.Sprintf("%.1f", r.P1),
			fmt.Sprintf("%s / %s", r.P4p50.Round(time.Millisecond), r.P4p99.Round(time.Millisecond)), v.why})
		fmt.Print(tbl.Text())
	}
	body := fmt.Sprintf(`## Speed on both profiles

Command: bin/harness speed %s (make bench). Machine: %d cores, %s. Each row is a fresh server and
fresh databases; one worker, one starter, the TCS simulator, the machine's RabbitMQ; the ceiling is %d bare
workflows (one no-op activity), P1 %d records published and written to TCS, P4 %d records at half of P1.

%s`, strings.Join(args, " "), runtime.NumCPU(), memTotal(), base.CeilingN, base.P1N, base.P4N, tbl.Markdown())
	if err := report.WriteSection(out, "speed-profiles", body); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return 0
}
