package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"sort"
	"text/tabwriter"

	"github.com/tis-writeback/writeback/internal/config"
	"github.com/tis-writeback/writeback/internal/progress"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/messages"
	"github.com/tis-writeback/writeback/starter/intake"
	"github.com/tis-writeback/writeback/starter/ops"
	"github.com/tis-writeback/writeback/tcs"
	"github.com/tis-writeback/writeback/workflows"
)

func runRetry(args []string) int   { return runSignal(workflows.SignalRetry, args) }
func runAbandon(args []string) int { return runSignal(workflows.SignalAbandon, args) }

func runSignal(signalName string, args []string) int {
	what := map[string]string{
		workflows.SignalRetry:   "Sends `retry` to dead-lettered workflows: each starts its TCS update again with a fresh retry budget.",
		workflows.SignalAbandon: "Sends `abandon` to dead-lettered workflows: each ends in state Abandoned.",
	}[signalName]
	fs := newFlagSet(signalName, what+`
Select with exactly one of --workflow-id, --query (a visibility query; the running workflows it
matches are signalled) or --all (every running workflow with WritebackState="DeadLettered").
Workflows that are closed, or not DeadLettered, are reported as skipped. The reason and the
operator are the signal's payload, so they are in the workflow's history.`)
	tc := temporalclient.Flags(fs)
	var sel ops.Selection
	fs.StringVar(&sel.WorkflowID, "workflow-id", "", "one workflow ID")
	fs.StringVar(&sel.Query, "query", "", "a visibility query, e.g. 'WritebackKind=\"scan\" AND WritebackState=\"DeadLettered\"'")
	fs.BoolVar(&sel.All, "all", false, "every running dead letter")
	dry := fs.Bool("dry-run", false, "print how many and which would be signalled, on standard output; signal nothing")
	reason := fs.String("reason", "", "why (recorded in the workflow's history)")
	by := fs.String("by", currentUser(), "who (recorded in the workflow's history)")
	var rate float64
	var conc int
	set := config.Set{FS: fs}
	set.Float(&rate, "rate", "SIGNAL_RATE", 50, "signals per second at most")
	set.Int(&conc, "concurrency", "SIGNAL_CONCURRENCY", 10, "signals in flight at once")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if err := sel.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, ok := dialTemporal(ctx, tc)
	if !ok {
		return 1
	}
	defer c.Close()

	targets, err := ops.Find(ctx, c, sel)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	n := ops.ToSignal(targets)
	var bar *progress.Bar
	if !*dry && n > 1 {
		bar = progress.Start("signalling "+signalName, n)
	}
	last := 0
	sum := ops.SignalAll(ctx, c, targets, ops.SignalOptions{Signal: signalName, DryRun: *dry, Rate: rate, Concurrency: conc,
		Payload: workflows.SignalPayload{Reason: *reason, By: *by},
		Progress: func(done int) {
			if bar != nil {
				bar.Add(done - last)
				last = done
			}
		}})
	if bar != nil {
		bar.Done()
	}
	if *dry {
		fmt.Printf("would signal %s to %d workflow(s):\n", signalName, len(sum.WouldSignal))
		sort.Strings(sum.WouldSignal)
		for _, id := range sum.WouldSignal {
			fmt.Println("  " + id)
		}
	} else {
		for id, e := range sum.Failed {
			fmt.Printf("failed     %s: %s\n", id, e)
		}
		if len(sum.Signalled) <= 20 {
			sort.Strings(sum.Signalled)
			for _, id := range sum.Signalled {
				fmt.Printf("signalled  %s\n", id)
			}
		}
	}
	for _, id := range sum.SkippedClosed {
		fmt.Printf("skipped    %s: closed\n", id)
	}
	for id, st := range sum.SkippedState {
		fmt.Printf("skipped    %s: state %s, not DeadLettered\n", id, st)
	}
	fmt.Printf("%s: signalled %d, skipped %d (closed %d, not DeadLettered %d), failed %d\n", signalName,
		len(sum.Signalled), len(sum.SkippedClosed)+len(sum.SkippedState), len(sum.SkippedClosed), len(sum.SkippedState), len(sum.Failed))
	if len(sum.Failed) > 0 {
		return 1
	}
	return 0
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

func runRedrive(args []string) int {
	fs := newFlagSet("redrive", `Moves the messages that the DLQ holds when it starts (a snapshot, so it cannot loop) back to
the writeback exchange under their original routing key (x-writeback-routing-key, or x-death for
messages the broker dead-lettered), one by one, each confirmed before it leaves the DLQ, reporting
each. A message that is still poison comes back to the DLQ with its reason: nothing is dropped.`)
	bf := addBrokerFlags(fs)
	dry := fs.Bool("dry-run", false, "list the messages and their reasons; move nothing")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	conn, pub, ok := openBroker(ctx, bf, false)
	if !ok {
		return 1
	}
	defer conn.Close()
	defer pub.Close()
	counts := map[string]int{}
	items, err := ops.Redrive(ctx, conn, pub, bf.topology, *dry, func(it ops.RedriveItem) {
		fmt.Printf("%-14s key=%-20s id=%s reason=%s\n", short(it.Outcome), it.RoutingKey, it.MessageID, it.Reason)
	})
	for _, it := range items {
		counts[short(it.Outcome)]++
	}
	fmt.Printf("DLQ %s: %d message(s): redriven %d, would redrive %d, kept %d\n", bf.topology.DLQ, len(items),
		counts["redriven"], counts["would redrive"], counts["kept"])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if counts["kept"] > 0 {
		return 1
	}
	return 0
}

func short(outcome string) string {
	for _, p := range []string{"redriven", "would redrive", "kept"} {
		if len(outcome) >= len(p) && outcome[:len(p)] == p {
			return p
		}
	}
	return outcome
}

func runReconcile(args []string) int {
	fs := newFlagSet("reconcile", `Reads exported placements (JSON lines, the placement.exported message format), asks TCS which
lack their EXPORTED event for that filename, and starts workflows for exactly those: a new run even
where a closed run of the same ID exists (its write did not stick). Placements TCS does not know
(404) are reported, not started. Running it twice is harmless.`)
	tc := temporalclient.Flags(fs)
	file := fs.String("file", "", "JSON-lines file of exported placements (- for stdin)")
	dry := fs.Bool("dry-run", false, "list the missing ones and print how many, on standard output; start nothing")
	var tcsURL, token, tokenFile string
	var conc int
	set := config.Set{FS: fs}
	set.String(&tcsURL, "tcs-url", "TCS_URL", "http://127.0.0.1:8081", "TCS base URL")
	set.Secret(&token, "tcs-token", "TCS_TOKEN", "TCS bearer token")
	set.String(&tokenFile, "tcs-token-file", "TCS_TOKEN_FILE", "", "file holding the TCS bearer token")
	set.Int(&conc, "concurrency", "RECONCILE_CONCURRENCY", 8, "TCS checks in flight at once")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *file == "" {
		fmt.Fprintln(os.Stderr, "--file is required")
		return 2
	}
	placements, bad, err := readPlacements(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, b := range bad {
		fmt.Fprintln(os.Stderr, "skipped:", b)
	}
	tok, err := config.Token(token, tokenFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	client, err := tcs.New(tcs.Options{BaseURL: tcsURL, Token: tok})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var starter intake.Starter = noStarter{}
	if !*dry {
		c, ok := dialTemporal(ctx, tc)
		if !ok {
			return 1
		}
		defer c.Close()
		starter = intake.TemporalStarter{Client: c, AllowRerun: true}
	}
	bar := progress.Start("checking TCS", len(placements))
	last := 0
	sum := ops.Reconcile(ctx, client, starter, placements, *dry, conc, func(n int) { bar.Add(n - last); last = n })
	bar.Done()

	sort.Strings(sum.MissingIDs)
	if *dry {
		for _, id := range sum.MissingIDs {
			fmt.Println("missing  " + id)
		}
	}
	sort.Strings(sum.UnknownIDs)
	for _, id := range sum.UnknownIDs {
		fmt.Println("unknown  " + id + " (TCS does not know the placement: not started)")
	}
	for id, e := range sum.Failures {
		fmt.Println("failed   " + id + ": " + e)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "checked\tpresent\tmissing\tstarted\trunning\tunknown\tfailed\t")
	fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", sum.Checked, sum.Present, sum.Missing, sum.Started, sum.Running, sum.Unknown, sum.Failed+len(bad))
	w.Flush()
	if *dry {
		fmt.Printf("%d missing\n", sum.Missing)
	}
	if sum.Failed > 0 {
		return 1
	}
	return 0
}

type noStarter struct{}

func (noStarter) Start(context.Context, intake.Record) (bool, error) { return false, nil }

func readPlacements(path string) ([]messages.PlacementExported, []string, error) {
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
	var out []messages.PlacementExported
	var bad []string
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		m, err := messages.DecodePlacement(sc.Bytes())
		if err != nil {
			bad = append(bad, fmt.Sprintf("line %d: %v", n, err))
			continue
		}
		out = append(out, m)
	}
	return out, bad, sc.Err()
}
