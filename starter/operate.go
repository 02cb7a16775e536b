package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"sort"
	"text/tabwriter"
	"time"

	sdkclient "go.temporal.io/sdk/client"

	"github.com/spf13/cobra"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/config"
	"github.com/tis-writeback/writeback/internal/operate"
	"github.com/tis-writeback/writeback/internal/progress"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/starter/ops"
)

func retryCmd() *cobra.Command {
	return signalCmd(contract.SignalRetry, "signal retry to dead-lettered workflows (one, a query, a group, or all); optionally with a corrected record",
		"Sends `retry` to dead-lettered workflows: each starts its TCS update again with a fresh retry budget.")
}

func abandonCmd() *cobra.Command {
	return signalCmd(contract.SignalAbandon, "signal abandon to dead-lettered workflows (one, a query, a group, or all)",
		"Sends `abandon` to dead-lettered workflows: each ends in state Abandoned.")
}

// signalCmd is `retry` and `abandon`: one record by Update, or a durable job for many.
func signalCmd(signalName, short, what string) *cobra.Command {
	return leaf(&cobra.Command{Use: signalName, Short: short, Args: cobra.NoArgs, Long: what + `
Select with exactly one of --workflow-id, --query (a visibility query; the running workflows it
matches are signalled), --group (the dead letters whose WritebackFailure is NAME; see
deadletters) or --all (every running workflow with WritebackState="DeadLettered").
Workflows that are closed, or not DeadLettered, are reported as skipped. The reason and the
operator are the signal's payload, so they are in the workflow's history. Then it waits (--wait)
for each signalled record to settle and ends with a table: completed, dead-lettered again (with
the new reason), still updating, abandoned.`}, func(fs *flag.FlagSet) body {
		tc := temporalclient.Flags(fs)
		var sel ops.Selection
		fs.StringVar(&sel.WorkflowID, "workflow-id", "", "one workflow ID")
		fs.StringVar(&sel.Query, "query", "", "a visibility query, e.g. 'WritebackKind=\"scan\" AND WritebackState=\"DeadLettered\"'")
		fs.StringVar(&sel.Group, "group", "", "the dead letters of one failure group (WritebackFailure), e.g. tcs-404")
		fs.BoolVar(&sel.All, "all", false, "every running dead letter")
		dry := fs.Bool("dry-run", false, "print how many and which would be signalled, on standard output; signal nothing")
		recordFile := ""
		if signalName == contract.SignalRetry {
			fs.StringVar(&recordFile, "record-file", "", "with --workflow-id: a corrected message of the same record, written instead of the original")
		}
		wait := fs.Duration("wait", 60*time.Second, "how long to wait for the signalled records to settle")
		noWait := fs.Bool("no-wait", false, "do not wait for the outcome")
		reason := fs.String("reason", "", "why (recorded in the workflow's history)")
		by := fs.String("by", currentUser(), "who (recorded in the workflow's history)")
		var rate float64
		set := config.Set{FS: fs}
		set.Float(&rate, "rate", "SIGNAL_RATE", 10, "a job's signals per second at most")
		requestID := fs.String("request-id", newRequestID(), "the request's ID: the record acts once on a request, however often it is sent (give the same one to send it again)")
		idsFile := fs.String("ids-file", "", "the workflow IDs to signal, one a line (as --dry-run prints them)")
		canary := fs.Int("canary", 1, "retry: the first K records are retried alone; the job goes on once they completed, halts if one dead-letters again")
		maxFailureRatio := fs.Float64("max-failure-ratio", 0.5, "after at least 10 outcomes, the job halts when more than this share dead-lettered again")
		maxRetries := fs.Int("max-retries", 5, "retry: skip a record operators already retried this many times (a loop guard)")
		return func([]string) int {
			if *idsFile != "" {
				ids, err := readIDs(*idsFile)
				if err != nil {
					fmt.Fprintln(stderr, err)
					return 2
				}
				if sel.WorkflowID != "" || sel.Query != "" || sel.All || sel.Group != "" {
					fmt.Fprintln(stderr, "give exactly one of --workflow-id, --query, --group, --all or --ids-file")
					return 2
				}
				sel.IDs = ids
			}
			if err := sel.Validate(); err != nil {
				fmt.Fprintln(stderr, err)
				return 2
			}
			payload := contract.SignalPayload{Reason: *reason, By: *by}
			if recordFile != "" {
				if sel.WorkflowID == "" {
					fmt.Fprintln(stderr, "--record-file needs --workflow-id: a correction is for one record")
					return 2
				}
				body, err := os.ReadFile(recordFile)
				if err != nil {
					fmt.Fprintln(stderr, err)
					return 2
				}
				if payload.Record, err = ops.CorrectedRecord(sel.WorkflowID, body); err != nil {
					fmt.Fprintln(stderr, "not sent:", err)
					return 2
				}
			}
			payload.RequestID = *requestID
			if signalName == contract.SignalAbandon {
				*canary = 0
			}
			job := contract.JobInput{Signal: signalName, Rate: rate, Canary: *canary, MaxFailureRatio: *maxFailureRatio,
				MaxRetries: *maxRetries, Reason: *reason, By: *by}
			return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
				if sel.WorkflowID != "" && !*dry {
					return askOne(ctx, c, signalName, sel.WorkflowID, payload, *wait, *noWait)
				}
				targets, err := ops.Find(ctx, c, sel)
				if err != nil {
					fmt.Fprintln(stderr, err)
					return 1
				}
				if *dry {
					printPlan(signalName, ops.Plan(targets, signalName, *maxRetries, ops.Retries(ctx, c, runningIDs(targets))))
					return 0
				}
				// --all, --query, --group, --ids-file: a durable job kept in Temporal.
				return runJob(ctx, c, signalName, targets, job, *wait, *noWait)
			})
		}
	})
}

// askOne sends one record the request as an Update and prints its answer: accepted (then, unless
// noWait, what became of the record), or refused and why (exit 1).
func askOne(ctx context.Context, c sdkclient.Client, signalName, id string, p contract.SignalPayload, wait time.Duration, noWait bool) int {
	actx, cancel := context.WithTimeout(ctx, time.Minute) // the record's worker may be busy with a backlog
	// A new Update ID each run: Temporal answers a known Update ID with its first outcome, and a re-run
	// must hear the record's own word ("already acted on"), not an echo of the first run's.
	a, err := operate.Ask(actx, c, id, "", signalName, "", p)
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "not known whether the record took the request (send it again with the same --request-id):", err)
		return 1
	}
	if !a.Accepted {
		fmt.Fprintf(stdout, "refused    %s: %s\n", id, a.Why)
		return 1
	}
	fmt.Fprintf(stdout, "accepted   %s: %s (request %s)\n", id, signalName, p.RequestID)
	if !noWait && wait > 0 {
		printOutcomes(ops.Await(ctx, c, []string{id}, map[string]string{id: a.Record.DeadLetteredAt}, wait), wait)
	}
	return 0
}

// printPlan prints a --dry-run: the records the job would signal (one a line, as --ids-file reads
// them) and, marked, those it would skip and why.
func printPlan(signalName string, plan []ops.Step) {
	var act, skip []ops.Step
	for _, st := range plan {
		if st.Skip == "" {
			act = append(act, st)
		} else {
			skip = append(skip, st)
		}
	}
	fmt.Fprintf(stdout, "would signal %s to %d workflow(s):\n", signalName, len(act))
	for _, st := range act {
		fmt.Fprintln(stdout, "  "+st.WorkflowID)
	}
	for _, st := range skip {
		fmt.Fprintf(stdout, "skipped    %s: %s\n", st.WorkflowID, st.Skip)
	}
	fmt.Fprintf(stdout, "%s: would signal %d, skip %d\n", signalName, len(act), len(skip))
}

func runningIDs(targets []ops.Target) []string {
	var ids []string
	for _, t := range targets {
		if t.Running && t.State == contract.StateDeadLettered {
			ids = append(ids, t.WorkflowID)
		}
	}
	return ids
}

// printOutcomes ends a retry or abandon with what became of each signalled record.
func printOutcomes(outcomes []ops.Outcome, wait time.Duration) {
	counts := map[string]int{}
	for _, o := range outcomes {
		counts[o.Result]++
		switch o.Result {
		case ops.OutcomeDeadLettered:
			fmt.Fprintf(stdout, "dead-lettered again  %s: %s\n", o.WorkflowID, o.Reason)
		case ops.OutcomeUpdating:
			if counts[o.Result] <= 20 {
				fmt.Fprintf(stdout, "still updating       %s (after %s)\n", o.WorkflowID, wait)
			}
		}
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "completed\tdead-lettered again\tstill updating\tabandoned\t")
	fmt.Fprintf(w, "%d\t%d\t%d\t%d\t\n", counts[ops.OutcomeCompleted], counts[ops.OutcomeDeadLettered], counts[ops.OutcomeUpdating],
		counts[ops.OutcomeAbandoned])
	w.Flush()
}

func deadLettersCmd() *cobra.Command {
	return leaf(&cobra.Command{Use: "deadletters", Short: "the dead letters grouped by kind and failure group, with the command that retries each group", Args: cobra.NoArgs,
		Long: `Lists the parked dead letters grouped by kind and failure group (WritebackFailure: tcs-404,
budget-spent, poison-exportedAt, …): how many, the oldest and newest (workflow start), one example,
the command that retries the group and its Temporal UI link.`},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			var uiURL string
			config.Set{FS: fs}.String(&uiURL, "ui-url", "TEMPORAL_UI_URL", "http://localhost:8233", "base URL of the Temporal UI, for the links")
			asJSON := fs.Bool("json", false, `print JSON: {"groups":[{"kind","group","count","oldest","newest","oldestAgeSeconds","example","retry","ui"}],"total"}`)
			return func([]string) int {
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
					groups, err := ops.DeadLetterGroups(ctx, c)
					if err != nil {
						fmt.Fprintln(stderr, err)
						return 1
					}
					now := time.Now()
					if *asJSON {
						return printJSON(deadLettersJSON(groups, now, uiURL, tc.Namespace), 0)
					}
					if len(groups) == 0 {
						fmt.Fprintln(stdout, "no dead letters")
						return 0
					}
					w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(w, "KIND\tGROUP\tCOUNT\tOLDEST\tAGE\tNEWEST\tEXAMPLE")
					total := 0
					for _, g := range groups {
						total += g.Count
						fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", g.Kind, g.Name, g.Count, g.Oldest.UTC().Format(time.RFC3339),
							age(now.Sub(g.Oldest)), g.Newest.UTC().Format(time.RFC3339), g.Example)
					}
					w.Flush()
					fmt.Fprintln(stdout)
					for _, g := range groups {
						fmt.Fprintf(stdout, "%s %s (%d):\n  retry: %s\n  UI:    %s\n", g.Kind, g.Name, g.Count, g.RetryCommand(prog), g.UILink(uiURL, tc.Namespace))
					}
					fmt.Fprintf(stdout, "\n%d dead letter(s) in %d group(s)\n", total, len(groups))
					return 0
				})
			}
		})
}

type deadLetterGroupJSON struct {
	Kind             string    `json:"kind"`
	Group            string    `json:"group"`
	Count            int       `json:"count"`
	Oldest           time.Time `json:"oldest"`
	Newest           time.Time `json:"newest"`
	OldestAgeSeconds int64     `json:"oldestAgeSeconds"`
	Example          string    `json:"example"`
	Retry            string    `json:"retry"`
	UI               string    `json:"ui"`
}

func deadLettersJSON(groups []ops.Group, now time.Time, uiURL, namespace string) any {
	out := struct {
		Groups []deadLetterGroupJSON `json:"groups"`
		Total  int                   `json:"total"`
	}{Groups: []deadLetterGroupJSON{}}
	for _, g := range groups {
		out.Total += g.Count
		out.Groups = append(out.Groups, deadLetterGroupJSON{Kind: g.Kind, Group: g.Name, Count: g.Count, Oldest: g.Oldest.UTC(),
			Newest: g.Newest.UTC(), OldestAgeSeconds: int64(now.Sub(g.Oldest) / time.Second), Example: g.Example,
			Retry: g.RetryCommand(prog), UI: g.UILink(uiURL, namespace)})
	}
	return out
}

// age prints how long ago, to the unit an operator reads at a glance (a parked dead letter has days).
func age(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	default:
		return fmt.Sprintf("%ds", int(max(d, 0)/time.Second))
	}
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

func redriveCmd() *cobra.Command {
	return leaf(&cobra.Command{Use: "redrive", Short: "move the DLQ's messages back to the exchange under their original routing key", Args: cobra.NoArgs,
		Long: `Moves the messages that the DLQ holds when it starts (a snapshot, so it cannot loop) back to
the writeback exchange under their original routing key (x-writeback-routing-key, or x-death for
messages the broker dead-lettered), one by one, each confirmed before it leaves the DLQ, reporting
each. A message that is still poison comes back to the DLQ with its reason: nothing is dropped.`},
		func(fs *flag.FlagSet) body {
			bf := addBrokerFlags(fs)
			dry := fs.Bool("dry-run", false, "list the messages and their reasons; move nothing")
			reason := fs.String("reason", "", "why (carried on each message into its record's workflow details)")
			by := fs.String("by", currentUser(), "who")
			asJSON := fs.Bool("json", false, `print JSON: {"dlq","messages":[{"messageId","routingKey","reason","outcome"}],"redriven","wouldRedrive","kept","error"}`)
			return func([]string) int {
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
				defer stop()
				conn, pub, ok := openBroker(ctx, bf, false)
				if !ok {
					return 1
				}
				defer conn.Close()
				defer pub.Close()
				items, err := ops.Redrive(ctx, conn, pub, bf.topology, *dry, *by, *reason, func(it ops.RedriveItem) {
					if !*asJSON {
						fmt.Fprintf(stdout, "%-14s key=%-20s id=%s reason=%s\n", short(it.Outcome), it.RoutingKey, it.MessageID, it.Reason)
					}
				})
				counts := map[string]int{}
				for _, it := range items {
					counts[short(it.Outcome)]++
				}
				code := 0
				if err != nil || counts["kept"] > 0 {
					code = 1
				}
				if *asJSON {
					type message struct {
						MessageID  string `json:"messageId"`
						RoutingKey string `json:"routingKey"`
						Reason     string `json:"reason"`
						Outcome    string `json:"outcome"`
					}
					out := struct {
						DLQ          string    `json:"dlq"`
						Messages     []message `json:"messages"`
						Redriven     int       `json:"redriven"`
						WouldRedrive int       `json:"wouldRedrive"`
						Kept         int       `json:"kept"`
						Error        string    `json:"error,omitempty"`
					}{DLQ: bf.topology.DLQ, Messages: []message{}, Redriven: counts["redriven"], WouldRedrive: counts["would redrive"], Kept: counts["kept"]}
					for _, it := range items {
						out.Messages = append(out.Messages, message{it.MessageID, it.RoutingKey, it.Reason, it.Outcome})
					}
					if err != nil {
						out.Error = err.Error()
					}
					return printJSON(out, code)
				}
				fmt.Fprintf(stdout, "DLQ %s: %d message(s): redriven %d, would redrive %d, kept %d\n", bf.topology.DLQ, len(items),
					counts["redriven"], counts["would redrive"], counts["kept"])
				if err != nil {
					fmt.Fprintln(stderr, err)
				}
				return code
			}
		})
}

func short(outcome string) string {
	for _, p := range []string{"redriven", "would redrive", "kept"} {
		if len(outcome) >= len(p) && outcome[:len(p)] == p {
			return p
		}
	}
	return outcome
}

func reconcileCmd() *cobra.Command {
	return leaf(&cobra.Command{Use: "reconcile", Short: "start workflows for exported placements whose EXPORTED event TCS lacks", Args: cobra.NoArgs,
		Long: `Reads exported placements (JSON lines, the placement.exported message format), asks TCS which
lack their EXPORTED event for that filename, and starts workflows for exactly those: a new run even
where a closed run of the same ID exists (its write did not stick). Placements TCS does not know
(404) are reported, not started. Running it twice is harmless.

The work is a job in the workers (a WritebackReconcile workflow per 2,000 placements, kind
reconcile in the Temporal UI): their TCS guard paces its reads behind fresh records and stops them
during a hold or an outage, and its history says who started it and what it did. This command starts
the jobs, names them on standard error, waits for them and prints what they did; interrupted, it
leaves them running. It needs Temporal and a worker, not TCS: the TCS flags are accepted and unused.`},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			file := fs.String("file", "", "JSON-lines file of exported placements (- for stdin)")
			dry := fs.Bool("dry-run", false, "list the missing ones and print how many, on standard output; start nothing")
			retryDL := fs.Bool("retry-dead-letters", false, "retry the missing placements whose workflow is parked as a dead letter")
			reason := fs.String("reason", "reconcile: TCS lacks the EXPORTED event", "why (in the job's and each started workflow's history)")
			by := fs.String("by", currentUser(), "who (in the job's and each started workflow's history)")
			var unused string
			var conc int
			set := config.Set{FS: fs}
			set.String(&unused, "tcs-url", "TCS_URL", "", "accepted, unused: the jobs read TCS through the workers")
			set.Secret(&unused, "tcs-token", "TCS_TOKEN", "accepted, unused: the jobs read TCS through the workers")
			set.String(&unused, "tcs-token-file", "TCS_TOKEN_FILE", "", "accepted, unused: the jobs read TCS through the workers")
			set.Int(&conc, "concurrency", "RECONCILE_CONCURRENCY", 8, "TCS reads in flight at once per job (within the workers' cap)")
			asJSON := fs.Bool("json", false, `print JSON: the counts ({"checked","present","missing","started","running","deadLetters","retried","unknown","failed"}) and the records ({"jobs","missingIds","unknownIds","deadLetterReasons","failures","skippedLines"})`)
			return func([]string) int {
				if *file == "" {
					fmt.Fprintln(stderr, "--file is required")
					return 2
				}
				placements, bad, err := readPlacements(*file)
				if err != nil {
					fmt.Fprintln(stderr, err)
					return 1
				}
				placements, dups := ops.Dedupe(placements)
				if !*asJSON {
					for _, b := range bad {
						fmt.Fprintln(stderr, "skipped:", b)
					}
					for _, d := range dups {
						fmt.Fprintln(stderr, "skipped (duplicate):", d)
					}
				}
				in := contract.ReconcileInput{DryRun: *dry, RetryDeadLetters: *retryDL, By: *by, Reason: *reason,
					Source: *file, Concurrency: conc}
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
					sum, err := runReconcile(ctx, c, ops.ReconcileJobs(placements, in))
					if err != nil {
						fmt.Fprintln(stderr, err)
						return 1
					}
					code := 0
					if sum.Failed+len(bad) > 0 { // what the table counts as failed: exit 1
						code = 1
					}
					sort.Strings(sum.MissingIDs)
					sort.Strings(sum.UnknownIDs)
					if *asJSON {
						return printJSON(reconcileJSON(sum, bad, dups), code)
					}
					printReconcile(sum, bad, *dry, *retryDL)
					return code
				})
			}
		})
}

// runReconcile starts the jobs and waits for their reports, showing their progress.
func runReconcile(ctx context.Context, c sdkclient.Client, jobs []contract.ReconcileInput) (ops.ReconcileSummary, error) {
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	runs, err := ops.StartReconcile(ctx, c, jobs, time.Now(), hex.EncodeToString(suffix))
	for _, r := range runs {
		fmt.Fprintln(stderr, "reconcile job", r.GetID())
	}
	if err != nil {
		if len(runs) > 0 {
			err = fmt.Errorf("%w (the jobs above go on; the placements of the others were not submitted)", err)
		}
		return ops.ReconcileSummary{}, err
	}
	total := 0
	for _, j := range jobs {
		total += len(j.Placements)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	bar := progress.Start("reconciling", total)
	defer bar.Done()
	watching, unwatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); watchReconcile(watching, c, runs, bar) }()
	defer func() { unwatch(); <-watched }()
	reports := make([]contract.ReconcileReport, len(runs))
	for i, r := range runs {
		if err := r.Get(ctx, &reports[i]); err != nil {
			if ctx.Err() != nil {
				return ops.ReconcileSummary{}, errors.New("stopped waiting: the reconcile jobs above go on in the workers (the Temporal UI, kind reconcile)")
			}
			return ops.ReconcileSummary{}, fmt.Errorf("reconcile job %s: %w", r.GetID(), err)
		}
	}
	sum := ops.Summarize(reports)
	bar.Add(sum.Checked - int(bar.Count()))
	return sum, nil
}

// watchReconcile moves the progress bar from the jobs' queries (never back: a query that fails
// counts nothing new), and says once when no worker has taken them after a while (they wait for one:
// nothing is lost).
func watchReconcile(ctx context.Context, c sdkclient.Client, runs []sdkclient.WorkflowRun, bar *progress.Bar) {
	start, told := time.Now(), false
	seen := make([]int, len(runs))
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		done := 0
		for i, r := range runs {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if v, err := c.QueryWorkflow(qctx, r.GetID(), "", contract.QueryReconcile); err == nil {
				var rep contract.ReconcileReport
				if v.Get(&rep) == nil {
					seen[i] = max(seen[i], rep.Checked())
				}
			}
			cancel()
			done += seen[i]
		}
		bar.Add(done - int(bar.Count()))
		if done == 0 && !told && time.Since(start) > 20*time.Second {
			told = true
			fmt.Fprintln(stderr, "no worker has checked a placement yet: the jobs wait for a writeback worker (and for TCS, if it is held)")
		}
	}
}

func reconcileJSON(sum ops.ReconcileSummary, bad, dups []string) any {
	orEmpty := func(m map[string]string) map[string]string {
		if m == nil {
			return map[string]string{}
		}
		return m
	}
	return struct {
		Checked           int               `json:"checked"`
		Present           int               `json:"present"`
		Missing           int               `json:"missing"`
		Started           int               `json:"started"`
		Running           int               `json:"running"`
		DeadLetters       int               `json:"deadLetters"`
		Retried           int               `json:"retried"`
		Unknown           int               `json:"unknown"`
		Failed            int               `json:"failed"`
		MissingIDs        []string          `json:"missingIds"`
		UnknownIDs        []string          `json:"unknownIds"`
		DeadLetterReasons map[string]string `json:"deadLetterReasons"`
		Failures          map[string]string `json:"failures"`
		SkippedLines      []string          `json:"skippedLines"`
		DuplicateLines    []string          `json:"duplicateLines"`
		Jobs              []string          `json:"jobs"`
	}{sum.Checked, sum.Present, sum.Missing, sum.Started, sum.Running, sum.DeadLettered, sum.Retried, sum.Unknown,
		sum.Failed + len(bad), append([]string{}, sum.MissingIDs...), append([]string{}, sum.UnknownIDs...),
		orEmpty(sum.DeadLetterReasons), orEmpty(sum.Failures), append([]string{}, bad...), append([]string{}, dups...), append([]string{}, sum.Jobs...)}
}

func printReconcile(sum ops.ReconcileSummary, bad []string, dry, retryDL bool) {
	deadIDs := make([]string, 0, len(sum.DeadLetterReasons))
	for id := range sum.DeadLetterReasons {
		deadIDs = append(deadIDs, id)
	}
	sort.Strings(deadIDs)
	verb := "dead letter"
	if retryDL && !dry {
		verb = "retried"
	}
	for _, id := range deadIDs {
		fmt.Fprintf(stdout, "%-11s %s: %s\n", verb, id, sum.DeadLetterReasons[id])
	}
	if dry {
		for _, id := range sum.MissingIDs {
			fmt.Fprintln(stdout, "missing  "+id)
		}
	}
	for _, id := range sum.UnknownIDs {
		fmt.Fprintln(stdout, "unknown  "+id+" (TCS does not know the placement: not started)")
	}
	for id, e := range sum.Failures {
		fmt.Fprintln(stdout, "failed   "+id+": "+e)
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "checked\tpresent\tmissing\tstarted\trunning\tdead letters\tretried\tunknown\tfailed\t")
	fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", sum.Checked, sum.Present, sum.Missing, sum.Started, sum.Running,
		sum.DeadLettered, sum.Retried, sum.Unknown, sum.Failed+len(bad))
	w.Flush()
	if dry {
		fmt.Fprintf(stdout, "%d missing\n", sum.Missing)
	}
}

func readPlacements(path string) ([]contract.PlacementExported, []string, error) {
	f := os.Stdin
	if path != "-" {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, nil, err
		}
		defer f.Close()
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<22)
	var out []contract.PlacementExported
	var bad []string
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		m, err := contract.DecodePlacement(sc.Bytes())
		if err != nil {
			bad = append(bad, fmt.Sprintf("line %d: %v", n, err))
			continue
		}
		out = append(out, m)
	}
	return out, bad, sc.Err()
}

// newRequestID names one run of a command's request.
func newRequestID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "cli-" + hex.EncodeToString(b)
}
