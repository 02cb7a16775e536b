package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/starter/ops"
)

// runLedger is `starter ledger show DAY [--json]` and `starter ledger run DAY [--report-only]`.
func runLedger(args []string) int {
	usage := `Usage: ` + prog + ` ledger <show|run> DAY [flags]

  show DAY [--json]                 the day's last ledger: its records by outcome, and each record whose
                                    row TCS no longer holds as written (drift), with what was done about it
  run DAY [--to DAY2] [--report-only] [--wait]
                                    check the day again now (prints "ledger <ID>" first); with --to, each
                                    day from DAY to DAY2 (a backfill: one durable ledger a day, started
                                    together, paced by the TCS cap); with --report-only drift is listed,
                                    nothing written
DAY is YYYY-MM-DD (UTC): the records whose workflow started that day.
`
	sub, rest, code, ok := subcommand(args, usage)
	if !ok {
		return code
	}
	if sub != "show" && sub != "run" {
		fmt.Fprintf(os.Stderr, "unknown ledger command %q\n\n%s", sub, usage)
		return 2
	}
	if len(rest) == 0 || rest[0] == "" || rest[0][0] == '-' {
		fmt.Fprintf(os.Stderr, "ledger %s needs a DAY (YYYY-MM-DD)\n\n%s", sub, usage)
		return 2
	}
	day, rest := rest[0], rest[1:]
	if _, err := contract.ParseLedgerDay(day); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fs := newFlagSet("ledger "+sub, "The daily ledger (see ledger --help).")
	tc := temporalclient.Flags(fs)
	asJSON := fs.Bool("json", false, `print the report as JSON: {"id","day","state","reportOnly","by","startedAt","finishedAt","counts","checked","drift","repaired","records":[{"workflowId","kind","recordId","what","action"}],"notListed"}`)
	var reportOnly *bool
	var by, to *string
	var wait *time.Duration
	if sub == "run" {
		reportOnly = fs.Bool("report-only", false, "list drift, write nothing")
		to = fs.String("to", "", "the last day of a backfill (YYYY-MM-DD): one ledger for each day from DAY to it")
		by = fs.String("by", currentUser(), "who (in the ledger and in the history of each record it writes again)")
		wait = fs.Duration("wait", 10*time.Minute, "how long to wait for the ledger to finish before printing it (0: do not wait)")
	}
	if code, ok := parse(fs, rest); !ok {
		return code
	}
	return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
		if sub == "run" {
			days, err := ledgerDays(day, *to)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			var runs []sdkclient.WorkflowRun
			for _, d := range days {
				id := contract.LedgerWorkflowID(d, time.Now(), strings.TrimPrefix(newRequestID(), "cli-")[:6])
				run, err := c.ExecuteWorkflow(ctx, sdkclient.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue,
					Priority: temporal.Priority{PriorityKey: contract.RecoveryPriority},
					TypedSearchAttributes: temporal.NewSearchAttributes(contract.KindKey.ValueSet(contract.LedgerKind),
						contract.RecordIDKey.ValueSet(d)),
					StaticSummary: "ledger of " + d + " (by " + *by + ")"},
					contract.LedgerWorkflowType, contract.LedgerInput{Day: d, ReportOnly: *reportOnly, By: *by})
				if err != nil {
					fmt.Fprintf(os.Stderr, "the ledger of %s did not start: %v\n", d, err)
					return 1
				}
				fmt.Println("ledger " + id)
				runs = append(runs, run)
			}
			if *wait <= 0 {
				return 0
			}
			wctx, cancel := context.WithTimeout(ctx, *wait)
			defer cancel()
			code := 0
			for i, run := range runs {
				var rep contract.LedgerReport
				if err := run.Get(wctx, &rep); err != nil {
					fmt.Fprintf(os.Stderr, "ledger %s: %v (follow it with: %s ledger show %s)\n", run.GetID(), err, prog, days[i])
					code = 1
					continue
				}
				printLedger(rep, *asJSON)
			}
			return code
		}
		rep, err := ops.LastLedger(ctx, c, day)
		if errors.Is(err, ops.ErrNoLedger) {
			fmt.Fprintf(os.Stderr, "no ledger ran for %s (start one: %s ledger run %s)\n", day, prog, day)
			return 1
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return printLedger(rep, *asJSON)
	})
}

func printLedger(rep contract.LedgerReport, asJSON bool) int {
	if rep.Records == nil {
		rep.Records = []contract.LedgerDrift{}
	}
	if asJSON {
		return printJSON(rep, 0)
	}
	mode := ""
	if rep.ReportOnly {
		mode = ", report-only"
	}
	fmt.Printf("ledger %s of %s: %s%s, by %s, started %s", rep.ID, rep.Day, orDash(rep.State), mode, orDash(rep.By), orDash(rep.StartedAt))
	if rep.FinishedAt != "" {
		fmt.Printf(", finished %s", rep.FinishedAt)
	}
	fmt.Println()
	fmt.Print("  records:")
	for _, k := range contract.LedgerOutcomes {
		fmt.Printf(" %s %d", k, rep.Counts[k])
	}
	fmt.Println()
	fmt.Printf("  rows read again in TCS: %d; drift: %d; written again: %d\n", rep.Checked, rep.Drift, rep.Repaired)
	for _, d := range rep.Records {
		fmt.Printf("drift  %s: %s; %s\n", d.WorkflowID, d.What, d.Action)
	}
	if rep.NotListed > 0 {
		fmt.Printf("(%d more drifted records not listed)\n", rep.NotListed)
	}
	for _, id := range rep.Expired {
		fmt.Printf("expired  %s: its parking period ended without a retry or abandon; TCS shows it errored\n", id)
	}
	return 0
}

// ledgerDays lists the days from day to to (inclusive; just day without to), at most 366.
func ledgerDays(day, to string) ([]string, error) {
	if to == "" {
		return []string{day}, nil
	}
	from, _ := contract.ParseLedgerDay(day)
	last, err := contract.ParseLedgerDay(to)
	if err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	if last.Before(from) || last.Sub(from) > 365*24*time.Hour {
		return nil, fmt.Errorf("--to %s must be from %s to a year after it", to, day)
	}
	var days []string
	for d := from; !d.After(last); d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format(contract.LedgerDayLayout))
	}
	return days, nil
}
