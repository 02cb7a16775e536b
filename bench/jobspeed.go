package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/tis-writeback/writeback/bench/stack"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// protectJob measures how fast a retry job drains: n dead letters, made known to TCS, retried by
// one job at --rate 100 through one worker capped at TCS_RATE=rate. The cap allows rate / (TCS
// requests per record) records a second; the job should reach 80 % of that.
func protectJob(ctx context.Context, root, profile string, n int, rate float64, logf func(string, ...any)) (string, error) {
	st, tc, done, err := protectStack(ctx, root, 1, rate, nil, profile)
	if err != nil {
		return "", err
	}
	defer done()
	if err := deadLettersToRetry(ctx, st, tc, 600001, n, "JOB.DAT"); err != nil {
		return "", err
	}
	var before sim.Stats
	if err := stack.AdminGet(st.TCSAdmin, "/admin/stats", &before); err != nil {
		return "", err
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, st.StarterBin, "retry", "--all", "--rate", "100", "--no-wait", "--reason", "bench: job speed", "--by", "bench")
	cmd.Env = append(os.Environ(), st.StarterEnv()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("starter retry --all: %v: %s", err, out)
	}
	if err := waitState(ctx, tc, contract.StateCompleted, n, 30*time.Minute); err != nil {
		return "", err
	}
	took := time.Since(start)
	var after sim.Stats
	if err := stack.AdminGet(st.TCSAdmin, "/admin/stats", &after); err != nil {
		return "", err
	}
	perRecord := float64(total(after)-total(before)) / float64(n)
	allowed := rate / perRecord
	got := float64(n) / took.Seconds()
	logf("job speed (%s): %d records in %.0f s = %.1f/s; the cap allows %.1f/s (%.2f requests a record)", profile, n, took.Seconds(), got, allowed, perRecord)
	server := "dev server"
	if profile == stack.ProfileCluster {
		server = "Temporal v1.32.0 on PostgreSQL"
	}
	return fmt.Sprintf("| retry job speed | %s: a job of %d dead letters (--rate 100, canary 1) through 1 worker at TCS_RATE=%g | %d records in %.0f s: %.1f records/s, %.0f %% of the %.1f records/s the cap allows (%.2f TCS requests a record; goal ≥ 80 %%) |",
		server, n, rate, n, took.Seconds(), got, 100*got/allowed, allowed, perRecord), nil
}

// total counts every request the simulator answered.
func total(s sim.Stats) int {
	n := 0
	for _, byStatus := range s.Requests {
		for _, c := range byStatus {
			n += c
		}
	}
	return n
}
