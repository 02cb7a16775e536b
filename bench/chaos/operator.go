package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/internal/operate"
)

// The control path under the same faults as the data path: during the publishing window an
// operator holds TCS and releases it, starts a retry job of the dead letters so far (TCS still
// lacks them: each dead-letters again), resumes it when its canary halts it, and cancels it; after
// the run, retryAll's job retries every dead letter once TCS knows them. Reconciled from outside:
// every record was retried exactly as often as the jobs say they signalled it.

// operator is what the operator did during the run.
type operator struct {
	mu      sync.Mutex
	job     string // the job started mid-run
	resumes int
	stopped bool // the job was cancelled: no more resumes
	actions []string
}

func (o *operator) isStopped() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.stopped }

func (o *operator) did(format string, a ...any) {
	o.mu.Lock()
	o.actions = append(o.actions, fmt.Sprintf(format, a...))
	o.mu.Unlock()
}

// runsDeadLetters is the visibility query of this run's parked dead letters: what `retry --all`
// takes, less the records of anything before the run (test-deploy's demo records share its namespace).
func runsDeadLetters(runStart time.Time) string {
	return fmt.Sprintf(`WritebackState="DeadLettered" AND ExecutionStatus="Running" AND StartTime >= %q`,
		runStart.Add(-time.Second).UTC().Format(time.RFC3339))
}

// cli runs one starter command against the target and returns its standard output.
func cli(ctx context.Context, st Target, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, st.StarterBin(), args...)
	cmd.Env = append(os.Environ(), st.StarterEnv()...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("starter %s: %w: %s", strings.Join(args, " "), err, lastLine(stderr.String()))
	}
	return string(out), nil
}

// jobOf reads a job's `jobs show --json`.
func jobOf(ctx context.Context, st Target, id string) (map[string]any, error) {
	out, err := cli(ctx, st, "jobs", "show", id, "--json")
	if err != nil {
		return nil, err
	}
	var js map[string]any
	return js, json.Unmarshal([]byte(out), &js)
}

func num(js map[string]any, k string) int { f, _ := js[k].(float64); return int(f) }

// scheduleOperator schedules the operator's actions across the publishing window.
func scheduleOperator(pl *plan, st Target, runStart time.Time) *operator {
	o := &operator{}
	run := func(args ...string) string {
		out, err := cli(pl.ctx, st, args...)
		if err != nil {
			pl.problem("operator: %v", err)
		}
		return out
	}
	// An operator releases a hold once it has been confirmed, not while it is still on its way: the
	// release waits for the hold's command (a release sent first would be confirmed at once, and the
	// hold, applied after it, then undone, never shown to its own command).
	held := make(chan struct{})
	pl.at(0.3, func() {
		defer close(held)
		run("tcs", "hold", "--reason", "chaos run: operator hold", "--by", "bench")
		o.did("tcs hold at 30%%")
		pl.logf("operator: tcs hold")
	})
	pl.at(0.4, func() {
		select {
		case <-held:
		case <-pl.ctx.Done():
			return
		}
		run("tcs", "release", "--by", "bench")
		o.did("release at 40%%")
		pl.logf("operator: tcs release")
	})
	pl.at(0.5, func() {
		out := run("retry", "--query", runsDeadLetters(runStart), "--no-wait", "--canary", "1", "--max-failure-ratio", "1", "--rate", "20",
			"--reason", "chaos run: operator's job under faults", "--by", "bench")
		first, _, _ := strings.Cut(out, "\n")
		if !strings.HasPrefix(first, "job ") {
			pl.problem("operator: retry --all printed %q first, not `job <ID>`", first)
			return
		}
		o.mu.Lock()
		o.job = strings.TrimPrefix(first, "job ")
		o.mu.Unlock()
		o.did("retry job %s at 50%%", o.job)
		pl.logf("operator: retry job %s", o.job)
		// Resume it whenever it halts (its canary dead-lettered again: TCS still lacks these), until
		// the cancel at 75% of the window.
		for !o.isStopped() && pl.ctx.Err() == nil {
			if js, err := jobOf(pl.ctx, st, o.job); err == nil && js["state"] == "Halted" {
				if _, err := cli(pl.ctx, st, "jobs", "resume", o.job); err == nil {
					o.mu.Lock()
					o.resumes++
					o.mu.Unlock()
				}
			}
			time.Sleep(2 * time.Second)
		}
	})
	pl.at(0.75, func() {
		o.mu.Lock()
		job := o.job
		o.stopped = true
		o.mu.Unlock()
		if job == "" {
			return
		}
		run("jobs", "cancel", job)
		o.did("jobs cancel at 75%%")
		pl.logf("operator: jobs cancel %s", job)
	})
	return o
}

// reconcileOperator checks, after retryAll's job (job2), that the run's records were retried
// exactly as often as the two jobs say: job1's records twice (job1, then job2), the other dead
// letters once, the rest never; and that every count of each job matches. Every record of the run
// is asked (a listing of dead letters may lag the last dead-lettering of a record job1 retried, and
// a deleted pod's log lines are not there to count).
func reconcileOperator(ctx context.Context, rep *Report, o *operator, st Target, tc client.Client, job2 string, own ownRecords) {
	if o == nil || o.job == "" {
		return
	}
	j1, err := jobOf(ctx, st, o.job)
	if err != nil {
		rep.Problems = append(rep.Problems, "operator: "+err.Error())
		return
	}
	if s := j1["state"]; s != "Cancelled" && s != "Done" {
		rep.Problems = append(rep.Problems, fmt.Sprintf("operator: job %s is %v after its cancel", o.job, s))
	}
	signalled1, notKnown1 := num(j1, "signalled"), num(j1, "notKnown") // notKnown: cancelled mid-chunk, may have taken it
	signalled2 := 0
	if job2 != "" {
		j2, err := jobOf(ctx, st, job2)
		if err != nil {
			rep.Problems = append(rep.Problems, "operator: "+err.Error())
			return
		}
		signalled2 = num(j2, "signalled")
		if j2["state"] != "Done" || num(j2, "completed") != signalled2 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("operator: retry --all job %s: %v, completed %d of %d signalled",
				job2, j2["state"], num(j2, "completed"), signalled2))
		}
	}
	var all []string
	for id := range own {
		all = append(all, id)
	}
	byRetries := map[int]int{}
	var mu sync.Mutex
	operate.ForEach(all, 16, func(id string) {
		st, err := operate.QueryState(ctx, tc, id)
		for try := 0; err != nil && try < 3 && ctx.Err() == nil; try++ { // a worker busy replaying: ask again
			time.Sleep(time.Second)
			st, err = operate.QueryState(ctx, tc, id)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			byRetries[-1]++
			return
		}
		byRetries[st.Retries]++
	})
	total := 0
	for n, c := range byRetries {
		if n > 0 {
			total += n * c
		}
	}
	o.mu.Lock()
	rep.Notes = append(rep.Notes, fmt.Sprintf("control path under the faults: %s; job %s (%d records, ended %v) signalled %d, %d not known (resumed %d times after its canary failed), "+
		"then retry --all signalled %d; of the %d records %d were retried twice, %d once (%d retries in all, the jobs signalled %d)",
		strings.Join(o.actions, ", "), o.job, num(j1, "total"), j1["state"], signalled1, notKnown1, o.resumes, signalled2, len(all), byRetries[2], byRetries[1], total, signalled1+signalled2))
	o.mu.Unlock()
	switch {
	case byRetries[-1] > 0:
		rep.Problems = append(rep.Problems, fmt.Sprintf("operator: %d records did not answer their state query", byRetries[-1]))
	case total < signalled1+signalled2 || total > signalled1+notKnown1+signalled2 || byRetries[2] < signalled1 ||
		byRetries[2] > signalled1+notKnown1 || byRetries[1]+byRetries[2] != signalled2 || len(all) != byRetries[0]+byRetries[1]+byRetries[2]:
		rep.Problems = append(rep.Problems, fmt.Sprintf("operator: the records' retries (%v by count) differ from what the jobs signalled (%d, then %d)",
			byRetries, signalled1, signalled2)+fmt.Sprintf(" (%d of job 1's not known)", notKnown1))
	}
}
