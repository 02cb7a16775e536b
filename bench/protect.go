package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/bench/report"
	"github.com/tis-writeback/writeback/bench/stack"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// runProtect measures what protects TCS: one cap across worker processes (fast path included),
// outage mode through a long storm, exactly-once under late commits.
func runProtect(args []string) int {
	fs := flag.NewFlagSet("bench protect", flag.ExitOnError)
	capN := fs.Int("cap-records", 3000, "backlog for the cap run (2 workers, TCS_RATE=cap-rate)")
	capRate := fs.Float64("cap-rate", 10, "TCS_RATE of the cap run")
	stormN := fs.Int("storm-records", 2000, "records pending during each storm")
	storm := fs.Duration("storm", 5*time.Minute, "length of each storm (503 to everything, then connections refused)")
	stormRate := fs.Int("storm-rate", 20, "TCS_RATE of the storm runs (above ~25 the dev server, not the cap, bounds the drain)")
	stormKey := fs.Bool("storm-key-honoured", false, "storm runs with TCS_IDEMPOTENCY_KEY_HONOURED=true: one request per record, "+
		"so the issue's goal (records / cap) × 1.3 applies as written")
	lateN := fs.Int("late-records", 1000, "records for the late-commit run")
	freshN := fs.Int("fresh-job", 300, "dead letters the retry job of the fresh-records-first run retries (TCS_RATE=10)")
	freshCluster := fs.Bool("fresh-cluster", true, "the fresh-records-first run on the production profile too (Temporal server on PostgreSQL)")
	shareRate := fs.Float64("share-rate", 20, "TCS_RATE of the run where workers leave and join under a backlog (0: skip)")
	sharePhase := fs.Duration("share-phase", 40*time.Second, "how long each phase of that run lasts")
	jobN := fs.Int("job-records", 600, "dead letters of the retry-job speed run, on both profiles (0: skip)")
	jobRate := fs.Float64("job-tcs-rate", 20, "TCS_RATE of the retry-job speed run (low enough that the cap, not the server, bounds it)")
	out := fs.String("out", "BENCHMARKS.md", "report file (its protect section is replaced)")
	_ = fs.Parse(args)
	root, _ := os.Getwd()
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05")+" "+f+"\n", a...) }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var rows []string
	keep := previousRows(*out) // rows of the runs skipped this time (n = 0) stay as they were
	if *capN <= 0 {
		rows = append(rows, keep["| one cap"]...)
	}
	if *capN > 0 {
		peak, took, err := protectCap(ctx, root, *capN, *capRate, logf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cap run:", err)
			return 1
		}
		rows = append(rows, fmt.Sprintf("| one cap | 2 worker processes, TCS_RATE=%g, %d records released at once | peak %.1f requests/s over any 10 s window (goal ≤ %.0f); all written in %.0f s |",
			*capRate, *capN, peak, *capRate*1.1, took.Seconds()))
	}
	if *shareRate <= 0 {
		rows = append(rows, keep["| cap follows the workers"]...)
	}
	if *shareRate > 0 {
		r, err := protectShare(ctx, root, *shareRate, *sharePhase, logf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "share run:", err)
			return 1
		}
		rows = append(rows, r)
	}
	if *stormN <= 0 {
		rows = append(rows, keep["| outage mode"]...)
	}
	if *stormN > 0 {
		for _, r := range keep["| outage mode"] { // the other key setting's rows stay
			if strings.Contains(r, "key honoured") != *stormKey {
				rows = append(rows, r)
			}
		}
		for _, f := range []sim.Faults{{ErrorRate: 1, ErrorStatus: 503}, {Outage: true}} {
			r, err := protectStorm(ctx, root, *stormN, *stormRate, *storm, f, *stormKey, logf)
			if err != nil {
				fmt.Fprintln(os.Stderr, "storm run:", err)
				return 1
			}
			rows = append(rows, r)
		}
	}
	if *lateN <= 0 {
		rows = append(rows, keep["| exactly once"]...)
	}
	if *lateN > 0 {
		r, err := protectLate(ctx, root, *lateN, logf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "late-commit run:", err)
			return 1
		}
		rows = append(rows, r...)
	}
	if *freshN <= 0 {
		rows = append(rows, keep["| fresh records first"]...)
	}
	if *freshN > 0 {
		profiles := []string{stack.ProfileDev}
		if *freshCluster {
			profiles = append(profiles, stack.ProfileCluster)
		}
		for _, p := range profiles {
			r, err := protectFresh(ctx, root, p, *freshN, logf)
			if err != nil {
				fmt.Fprintln(os.Stderr, "fresh-records run:", err)
				return 1
			}
			rows = append(rows, r)
		}
	}
	if *jobN <= 0 {
		rows = append(rows, keep["| retry job speed"]...)
	}
	if *jobN > 0 {
		for _, p := range []string{stack.ProfileDev, stack.ProfileCluster} {
			r, err := protectJob(ctx, root, p, *jobN, *jobRate, logf)
			if err != nil {
				fmt.Fprintln(os.Stderr, "job speed run:", err)
				return 1
			}
			rows = append(rows, r)
		}
	}
	body := fmt.Sprintf(`## Protecting TCS

Command: bin/harness protect%s. Worker processes, the dev server, the TCS simulator (its request
timeline counts what reached TCS), on this machine.

| what | run | measured |
|---|---|---|
%s
`, strings.TrimRight(" "+strings.Join(args, " "), " "), strings.Join(rows, "\n"))
	if err := report.WriteSection(*out, "protect", body); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	fmt.Print(body)
	return 0
}

func protectStack(ctx context.Context, root string, workers int, rate float64, env []string, profile ...string) (*stack.Stack, client.Client, func(), error) {
	dir, err := os.MkdirTemp("", "writeback-protect-")
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := stack.Start(ctx, stack.Config{Dir: dir, Root: root, Workers: workers, Placements: 100000, TCSRate: rate,
		WorkerEnv: env, TopologyTag: fmt.Sprintf("protect-%d", time.Now().UnixNano()%1e9), Profile: strings.Join(profile, "")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	tc, err := st.Client()
	if err != nil {
		st.Close()
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	return st, tc, func() { tc.Close(); st.Close(); os.RemoveAll(dir) }, nil
}

// startAll starts n placement workflows (ids from base), 16 at a time.
func startAll(ctx context.Context, tc client.Client, base int64, n int, file string) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		m := contract.PlacementExported{PlacementID: base + int64(i), PositionNumber: 1, PositionID: 2, Filename: file,
			ExportedAt: time.Date(2021, 7, 28, 13, 10, 0, 0, time.UTC)}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: m.WorkflowID(), TaskQueue: contract.TaskQueue},
				contract.PlacementWorkflowType, m)
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func countState(ctx context.Context, tc client.Client, state string) int {
	resp, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Query: fmt.Sprintf(`%s=%q`, contract.StateKey.GetName(), state)})
	if err != nil {
		return -1
	}
	return int(resp.GetCount())
}

func waitState(ctx context.Context, tc client.Client, state string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if countState(ctx, tc, state) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("fewer than %d workflows %s after %s", n, state, timeout)
}

func timeline(admin string) map[int64]int {
	var raw map[string]int
	_ = stack.AdminGet(admin, "/admin/timeline", &raw)
	out := map[int64]int{}
	for k, v := range raw {
		var sec int64
		fmt.Sscan(k, &sec)
		out[sec] = v
	}
	return out
}

func protectCap(ctx context.Context, root string, n int, rate float64, logf func(string, ...any)) (float64, time.Duration, error) {
	st, tc, done, err := protectStack(ctx, root, 0, rate, []string{"TCS_IDEMPOTENCY_KEY_HONOURED=true"})
	if err != nil {
		return 0, 0, err
	}
	defer done()
	if err := startAll(ctx, tc, 1, n, "CAP.DAT"); err != nil {
		return 0, 0, err
	}
	logf("cap: %d records waiting; starting 2 workers", n)
	start := time.Now()
	for i := 0; i < 2; i++ {
		if _, err := st.AddWorker(); err != nil {
			return 0, 0, err
		}
	}
	if err := waitState(ctx, tc, contract.StateCompleted, n, time.Duration(float64(n)/rate*2+120)*time.Second); err != nil {
		return 0, 0, err
	}
	took := time.Since(start)
	peak := sim.MaxRate(timeline(st.TCSAdmin), 10)
	logf("cap: peak %.1f requests/s over 10 s, %d records in %.0f s", peak, n, took.Seconds())
	return peak, took, nil
}

func protectStorm(ctx context.Context, root string, n, rate int, storm time.Duration, f sim.Faults, keyHonoured bool, logf func(string, ...any)) (string, error) {
	env := []string{"RETRY_BUDGET=2m"}
	perRecord, keyNote := 2, "read before each write"
	if keyHonoured {
		env = append(env, "TCS_IDEMPOTENCY_KEY_HONOURED=true")
		perRecord, keyNote = 1, "key honoured, no read"
	}
	st, tc, done, err := protectStack(ctx, root, 1, float64(rate), env)
	if err != nil {
		return "", err
	}
	defer done()
	name := "503 to everything"
	if f.Outage {
		name = "connections refused"
	}
	if err := stack.SetFaults(st.TCSAdmin, f); err != nil {
		return "", err
	}
	stormStart := time.Now()
	if err := startAll(ctx, tc, 1, n, "STORM.DAT"); err != nil {
		return "", err
	}
	logf("storm (%s): %d records pending; waiting %s", name, n, storm)
	time.Sleep(time.Until(stormStart.Add(storm)))
	tl := timeline(st.TCSAdmin)
	during := 0
	from := stormStart.Unix() + 60 // after the first minute (entering the mode)
	for sec := from; sec < time.Now().Unix(); sec++ {
		during += tl[sec]
	}
	perSec := float64(during) / float64(time.Now().Unix()-from)
	if err := stack.SetFaults(st.TCSAdmin, sim.Faults{}); err != nil {
		return "", err
	}
	back := time.Now()
	// Each record costs two requests (the read before the write) or, with the key honoured, one:
	// the goal is (requests per record × n / cap) × 1.3.
	goal := time.Duration(float64(perRecord)*float64(n)/float64(rate)*1.3) * time.Second
	// Every record settles: written, or (the promise broken) dead-lettered.
	deadline := time.Now().Add(10 * time.Minute)
	for countState(ctx, tc, contract.StateCompleted)+countState(ctx, tc, contract.StateDeadLettered) < n {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the %d records did not settle within 10 minutes after the storm", n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	drain := time.Since(back)
	dead := countState(ctx, tc, contract.StateDeadLettered)
	logf("storm (%s): %.2f requests/s reached TCS during it; %d dead letters; all written %.0f s after (goal %.0f s)",
		name, perSec, dead, drain.Seconds(), goal.Seconds())
	return fmt.Sprintf("| outage mode | %d records pending, TCS %s for %s, RETRY_BUDGET=2m, TCS_RATE=%d, 1 worker, %s | %d dead letters; %.2f requests/s reached TCS during the storm (after its first minute; goal ≤ 2); all written %.0f s after it ended (goal %d request(s) × %d / cap × 1.3 = %.0f s) |",
		n, name, storm, rate, keyNote, dead, perSec, drain.Seconds(), perRecord, n, goal.Seconds()), nil
}

func protectLate(ctx context.Context, root string, n int, logf func(string, ...any)) ([]string, error) {
	var rows []string
	for _, honoured := range []bool{false, true} {
		env := []string{"TCS_TIMEOUT=500ms", "RETRY_INITIAL_INTERVAL=200ms", "ATTEMPT_TIMEOUT=5s"}
		label := "key sent, read before each write"
		if honoured {
			env = append(env, "TCS_IDEMPOTENCY_KEY_HONOURED=true")
			label = "key honoured, no read"
		}
		st, tc, done, err := protectStack(ctx, root, 1, 100, env)
		if err != nil {
			return nil, err
		}
		if err := stack.SetFaults(st.TCSAdmin, sim.Faults{LateCommitRate: 0.2, LateCommitMs: 3000, Only: "/esr-exported"}); err != nil {
			done()
			return nil, err
		}
		if err := startAll(ctx, tc, 1, n, "LATE.DAT"); err != nil {
			done()
			return nil, err
		}
		err = waitState(ctx, tc, contract.StateCompleted, n, 10*time.Minute)
		time.Sleep(4 * time.Second) // the last late commits land
		var stats sim.Stats
		_ = stack.AdminGet(st.TCSAdmin, "/admin/stats", &stats)
		done()
		if err != nil {
			return nil, err
		}
		total := 0
		for _, byStatus := range stats.Requests {
			for _, c := range byStatus {
				total += c
			}
		}
		logf("late commits (%s): %d duplicates, %.2f requests per record", label, stats.Duplicates, float64(total)/float64(n))
		rows = append(rows, fmt.Sprintf("| exactly once, late commits | %d records, 20%% of writes committed 3 s after the client gave up (%s) | %d duplicate rows; %.2f TCS requests per record |",
			n, label, stats.Duplicates, float64(total)/float64(n)))
	}
	return rows, nil
}

// previousRows reads the rows of the protect section already in the report, by their first cell.
func previousRows(path string) map[string][]string {
	out := map[string][]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	text := string(b)
	start := strings.Index(text, "<!-- protect:start -->")
	end := strings.Index(text, "<!-- protect:end -->")
	if start < 0 || end < start {
		return out
	}
	for _, line := range strings.Split(text[start:end], "\n") {
		for _, k := range []string{"| one cap", "| cap follows the workers", "| outage mode", "| exactly once", "| fresh records first"} {
			if strings.HasPrefix(line, k) {
				out[k] = append(out[k], line)
			}
		}
	}
	return out
}

// deadLettersToRetry makes n dead letters (placements from base, above the simulator's seeded ones:
// 404) and then has TCS know them, so that a retry completes each.
func deadLettersToRetry(ctx context.Context, st *stack.Stack, tc client.Client, base int64, n int, file string) error {
	if err := startAll(ctx, tc, base, n, file); err != nil {
		return err
	}
	if err := waitState(ctx, tc, contract.StateDeadLettered, n, 10*time.Minute); err != nil {
		return err
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = base + int64(i)
	}
	return stack.AdminPost(st.TCSAdmin, "/admin/known", map[string]any{"placements": ids})
}

// protectFresh measures how long a fresh export takes to be written, alone and while a retry job
// of n dead letters queues behind a cap of 10 requests/s.
func protectFresh(ctx context.Context, root, profile string, n int, logf func(string, ...any)) (string, error) {
	st, tc, done, err := protectStack(ctx, root, 1, 500, nil, profile)
	if err != nil {
		return "", err
	}
	defer done()
	if err := deadLettersToRetry(ctx, st, tc, 500001, n, "RECOVER.DAT"); err != nil {
		return "", err
	}
	starter := func(args ...string) error {
		cmd := exec.CommandContext(ctx, st.StarterBin, args...)
		cmd.Env = append(os.Environ(), st.StarterEnv()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("starter %v: %v: %s", args, err, out)
		}
		return nil
	}
	if err := starter("tcs", "rate", "10", "--reason", "bench: fresh records first", "--by", "bench"); err != nil {
		return "", err
	}
	time.Sleep(8 * time.Second) // workers read the control state every 5 s
	const fresh = 10
	alone, err := freshLatencies(ctx, tc, 1, fresh)
	if err != nil {
		return "", err
	}
	jobStart := time.Now()
	if err := starter("retry", "--all", "--rate", "1000", "--canary", "0", "--no-wait", "--reason", "bench", "--by", "bench"); err != nil {
		return "", err
	}
	time.Sleep(3 * time.Second) // the job signals its records; they queue behind the cap
	during, err := freshLatencies(ctx, tc, 1+fresh, fresh)
	if err != nil {
		return "", err
	}
	if err := waitState(ctx, tc, contract.StateCompleted, n+2*fresh, 10*time.Minute); err != nil {
		return "", err
	}
	job := time.Since(jobStart)
	logf("fresh records first: alone p50 %s max %s; during the job p50 %s max %s; job of %d in %.0f s",
		alone[len(alone)/2], alone[len(alone)-1], during[len(during)/2], during[len(during)-1], n, job.Seconds())
	server := "dev server (matching.useNewMatcher=true)"
	if profile == stack.ProfileCluster {
		server = "Temporal v1.32.0 on PostgreSQL (deploy/temporal)"
	}
	return fmt.Sprintf("| fresh records first | %s: a retry job of %d dead letters (--rate 1000, no canary) behind TCS rate 10; %d fresh exports, one a second, alone and during the job | fresh export written in p50 %.1f s / max %.1f s alone, p50 %.1f s / max %.1f s during the job (which took %.0f s; at least 2 requests × %d / 10 = %d s) |",
		server, n, fresh, alone[len(alone)/2].Seconds(), alone[len(alone)-1].Seconds(), during[len(during)/2].Seconds(),
		during[len(during)-1].Seconds(), job.Seconds(), n, 2*n/10), nil
}

// freshLatencies starts k fresh placements one a second (ids from base) and returns, sorted, how
// long each took from its start to its completion.
func freshLatencies(ctx context.Context, tc client.Client, base int64, k int) ([]time.Duration, error) {
	out := make([]time.Duration, k)
	errs := make(chan error, k)
	var wg sync.WaitGroup
	for i := 0; i < k; i++ {
		m := contract.PlacementExported{PlacementID: base + int64(i), PositionNumber: 1, PositionID: 2, Filename: "FRESH.DAT",
			ExportedAt: time.Date(2021, 7, 28, 13, 10, 0, 0, time.UTC)}
		start := time.Now()
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: m.WorkflowID(), TaskQueue: contract.TaskQueue},
			contract.PlacementWorkflowType, m)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var st contract.Status
			if err := run.Get(ctx, &st); err != nil {
				errs <- err
			}
			out[i] = time.Since(start)
		}(i)
		time.Sleep(time.Second)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out, nil
}
