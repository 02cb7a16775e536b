package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/spf13/cobra"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/starter/ops"
)

const ledgerDayHelp = "DAY is YYYY-MM-DD (UTC): the records whose workflow started that day."

// ledgerCmd is `starter ledger show DAY [--json]` and `starter ledger run DAY [--to DAY2] [--report-only]`.
func ledgerCmd() *cobra.Command {
	show := leaf(&cobra.Command{Use: "show DAY", Args: ledgerDayArg,
		Short: "the day's last ledger: its records by outcome, and each record whose row TCS no longer holds as written (drift), with what was done about it",
		Long:  "The day's last ledger: its records by outcome, and each record whose row TCS no longer holds as written\n(drift), with what was done about it. " + ledgerDayHelp},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			asJSON := ledgerJSONFlag(fs)
			return func(args []string) int {
				day := args[0]
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
					rep, err := ops.LastLedger(ctx, c, day)
					if errors.Is(err, ops.ErrNoLedger) {
						fmt.Fprintf(stderr, "no ledger ran for %s (start one: %s ledger run %s)\n", day, prog, day)
						return 1
					}
					if err != nil {
						fmt.Fprintln(stderr, err)
						return 1
					}
					return printLedger(rep, *asJSON)
				})
			}
		})
	run := leaf(&cobra.Command{Use: "run DAY", Args: ledgerDayArg,
		Short: "check the day again now (prints \"ledger <ID>\" first)",
		Long: `Checks the day again now and prints "ledger <ID>" first; with --to, each day from DAY to DAY2 (a
backfill: one durable ledger a day, started together, paced by the TCS cap); with --report-only
drift is listed, nothing written. ` + ledgerDayHelp},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			asJSON := ledgerJSONFlag(fs)
			reportOnly := fs.Bool("report-only", false, "list drift, write nothing")
			to := fs.String("to", "", "the last day of a backfill (YYYY-MM-DD): one ledger for each day from DAY to it")
			by := fs.String("by", currentUser(), "who (in the ledger and in the history of each record it writes again)")
			wait := fs.Duration("wait", 10*time.Minute, "how long to wait for the ledger to finish before printing it (0: do not wait)")
			return func(args []string) int {
				day := args[0]
				days, err := ledgerDays(day, *to)
				if err != nil {
					fmt.Fprintln(stderr, err)
					return 2
				}
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
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
							fmt.Fprintf(stderr, "the ledger of %s did not start: %v\n", d, err)
							return 1
						}
						fmt.Fprintln(stdout, "ledger "+id)
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
							fmt.Fprintf(stderr, "ledger %s: %v (follow it with: %s ledger show %s)\n", run.GetID(), err, prog, days[i])
							code = 1
							continue
						}
						printLedger(rep, *asJSON)
					}
					return code
				})
			}
		})
	return group(&cobra.Command{Use: "ledger", Short: "the daily ledger: show DAY (records by outcome, and drift: rows TCS no longer holds), run DAY (check it again now)"},
		show, run)
}

// ledgerDayArg wants one DAY, YYYY-MM-DD.
func ledgerDayArg(cmd *cobra.Command, args []string) error {
	if err := exactArgs(1, "a DAY (YYYY-MM-DD)")(cmd, args); err != nil {
		return err
	}
	if _, err := contract.ParseLedgerDay(args[0]); err != nil {
		return usageError{err}
	}
	return nil
}

func ledgerJSONFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, `print the report as JSON: {"id","day","state","reportOnly","by","startedAt","finishedAt","counts","checked","drift","repaired","records":[{"workflowId","kind","recordId","what","action"}],"notListed"}`)
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
	fmt.Fprintf(stdout, "ledger %s of %s: %s%s, by %s, started %s", rep.ID, rep.Day, orDash(rep.State), mode, orDash(rep.By), orDash(rep.StartedAt))
	if rep.FinishedAt != "" {
		fmt.Fprintf(stdout, ", finished %s", rep.FinishedAt)
	}
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, "  records:")
	for _, k := range contract.LedgerOutcomes {
		fmt.Fprintf(stdout, " %s %d", k, rep.Counts[k])
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "  rows read again in TCS: %d; drift: %d; written again: %d\n", rep.Checked, rep.Drift, rep.Repaired)
	for _, d := range rep.Records {
		fmt.Fprintf(stdout, "drift  %s: %s; %s\n", d.WorkflowID, d.What, d.Action)
	}
	if rep.NotListed > 0 {
		fmt.Fprintf(stdout, "(%d more drifted records not listed)\n", rep.NotListed)
	}
	for _, id := range rep.Expired {
		fmt.Fprintf(stdout, "expired  %s: its parking period ended without a retry or abandon; TCS shows it errored\n", id)
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
