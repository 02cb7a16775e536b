package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/spf13/cobra"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/temporalclient"
)

// tcsCmd is `starter tcs status|hold|release|rate`: the TCS mode for every worker, kept in the TCS
// control workflow.
func tcsCmd() *cobra.Command {
	status := tcsLeaf(&cobra.Command{Use: "status", Short: "the TCS mode in force for every worker (normal, outage, hold) and the rate cap the workers enforce", Args: cobra.NoArgs},
		func(fs *flag.FlagSet) func([]string) (*contract.TCSCommand, error) {
			return func([]string) (*contract.TCSCommand, error) { return nil, nil }
		})
	hold := tcsLeaf(&cobra.Command{Use: "hold", Short: "within 10 s no worker sends TCS any request, until release; no record's budget is spent", Args: cobra.NoArgs},
		func(fs *flag.FlagSet) func([]string) (*contract.TCSCommand, error) {
			reason, by := changeFlags(fs)
			return func([]string) (*contract.TCSCommand, error) {
				if *reason == "" {
					return nil, fmt.Errorf("tcs hold needs --reason: every worker logs who held TCS and why")
				}
				return &contract.TCSCommand{Op: contract.TCSHold, Reason: *reason, By: *by}, nil
			}
		})
	release := tcsLeaf(&cobra.Command{Use: "release", Short: "requests flow again; the records held back are woken", Args: cobra.NoArgs},
		func(fs *flag.FlagSet) func([]string) (*contract.TCSCommand, error) {
			reason, by := changeFlags(fs)
			return func([]string) (*contract.TCSCommand, error) {
				return &contract.TCSCommand{Op: contract.TCSRelease, Reason: *reason, By: *by}, nil
			}
		})
	rate := tcsLeaf(&cobra.Command{Use: "rate (N | --reset)", Short: "the cap on TCS requests per second for all workers together, within 10 s; --reset: back to the workers' TCS_RATE",
		Args: cobra.MaximumNArgs(1)},
		func(fs *flag.FlagSet) func([]string) (*contract.TCSCommand, error) {
			reason, by := changeFlags(fs)
			reset := fs.Bool("reset", false, "back to the workers' TCS_RATE")
			return func(args []string) (*contract.TCSCommand, error) {
				return rateCommand(args, *reset, *reason, *by)
			}
		})
	return group(&cobra.Command{Use: "tcs", Short: "the TCS mode for every worker: status, hold, release, rate",
		Long: "The TCS mode for every worker, kept in Temporal (workflow " + contract.TCSControlWorkflowID + ")."},
		status, hold, release, rate)
}

// changeFlags are the who and why a change of the TCS mode carries.
func changeFlags(fs *flag.FlagSet) (reason, by *string) {
	return fs.String("reason", "", "why (kept with the change and logged by the workers)"), fs.String("by", currentUser(), "who")
}

// rateCommand reads `tcs rate N` or `tcs rate --reset`.
func rateCommand(args []string, reset bool, reason, by string) (*contract.TCSCommand, error) {
	switch {
	case reset && len(args) > 0:
		return nil, fmt.Errorf("tcs rate takes N or --reset, not both")
	case reset:
		return &contract.TCSCommand{Op: contract.TCSRateReset, Reason: reason, By: by}, nil
	case len(args) == 0:
		return nil, fmt.Errorf("tcs rate needs N (requests per second) or --reset")
	}
	n, err := strconv.ParseFloat(args[0], 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return nil, fmt.Errorf("rate %q: want a number of requests per second above 0", args[0])
	}
	return &contract.TCSCommand{Op: contract.TCSRate, Rate: n, Reason: reason, By: by}, nil
}

// tcsLeaf is one `tcs` command: define registers its own flags and returns what reads its command
// line into the change to send (nil: none, status only); the change is sent, then the mode printed.
func tcsLeaf(c *cobra.Command, define func(fs *flag.FlagSet) func([]string) (*contract.TCSCommand, error)) *cobra.Command {
	return leaf(c, func(fs *flag.FlagSet) body {
		tc := temporalclient.Flags(fs)
		asJSON := fs.Bool("json", false, `print the mode as JSON: {"mode","since","reason","by","rate","rateSource","workers"}`)
		read := define(fs)
		return func(args []string) int {
			cmd, err := read(args)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return 2
			}
			return applyTCS(tc, cmd, *asJSON)
		}
	})
}

// applyTCS sends cmd (if any) to the TCS control, waits until the control shows it, and prints the
// mode in force.
func applyTCS(tc *temporalclient.Config, cmd *contract.TCSCommand, asJSON bool) int {
	return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
		if cmd != nil {
			_, err := c.SignalWithStartWorkflow(ctx, contract.TCSControlWorkflowID, contract.SignalTCSCommand, *cmd,
				contract.TCSControlOptions(), contract.TCSControlWorkflowType, nil)
			if err != nil {
				fmt.Fprintln(stderr, "cannot reach the TCS control:", err)
				return 1
			}
			if cmd.Op == contract.TCSRate || cmd.Op == contract.TCSRateReset {
				clearQueueRate(ctx, c, tc.Namespace, cmd)
			}
		}
		st, err := tcsStatus(ctx, c, cmd)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		printTCSStatus(st, cmd != nil, asJSON)
		return 0
	})
}

// printTCSStatus prints the mode in force; changed says a change was just sent.
func printTCSStatus(st contract.TCSStatus, changed, asJSON bool) {
	// The cap in force is what the workers present report, never a setting of this CLI's own:
	// with no worker present and no operator's rate, none is in force (0).
	unreported := st.Rate == 0 && st.RateDisagreement == ""
	if asJSON {
		out := map[string]any{"mode": st.Mode, "since": st.Since, "reason": st.Reason, "by": st.By, "rate": st.Rate, "rateSource": st.RateSource,
			"workers": len(st.Workers)}
		if st.RateDisagreement != "" {
			out["rateDisagreement"] = st.RateDisagreement
		}
		b, _ := json.Marshal(out)
		fmt.Fprintln(stdout, string(b))
		return
	}
	fmt.Fprintf(stdout, "mode   %s since %s", st.Mode, orDash(st.Since))
	if st.Reason != "" || st.By != "" {
		fmt.Fprintf(stdout, " (by %s: %s)", orDash(st.By), orDash(st.Reason))
	}
	switch {
	case st.RateDisagreement != "":
		fmt.Fprintf(stdout, "\nrate   the workers disagree: %s (each enforces its share of its own)\n", st.RateDisagreement)
	case unreported:
		fmt.Fprintf(stdout, "\nrate   none reported: no worker present\n")
	default:
		fmt.Fprintf(stdout, "\nrate   %g requests/s for all workers (%s)\n", st.Rate, st.RateSource)
	}
	fmt.Fprintf(stdout, "workers %d present, each taking an equal share\n", len(st.Workers))
	if changed {
		fmt.Fprintln(stdout, "workers apply it within 10 s")
	}
}

// tcsStatus reads the TCS control; after a command it waits until the control shows it.
func tcsStatus(ctx context.Context, c sdkclient.Client, cmd *contract.TCSCommand) (contract.TCSStatus, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st contract.TCSStatus
		desc, err := c.DescribeWorkflowExecution(ctx, contract.TCSControlWorkflowID, "")
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) && cmd == nil {
			return contract.TCSStatus{Mode: "normal", RateSource: "TCS_RATE"}, nil // nobody ever changed it
		}
		if err == nil {
			var ok bool
			if st, ok = contract.ReadTCSStatus(desc.GetWorkflowExecutionInfo().GetMemo().GetFields()); !ok {
				err = errors.New("the TCS control has not published its state yet")
			}
		}
		if err == nil && (cmd == nil || applied(st, *cmd)) {
			return st, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("the TCS control did not show the change within 20 s (is a worker running?)")
			}
			return st, fmt.Errorf("TCS control: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func applied(st contract.TCSStatus, cmd contract.TCSCommand) bool {
	switch cmd.Op {
	case contract.TCSHold:
		return st.Held
	case contract.TCSRelease:
		return !st.Held
	case contract.TCSRate:
		return st.RateOverride == cmd.Rate
	case contract.TCSRateReset:
		return st.RateOverride == 0
	}
	return true
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clearQueueRate unsets the activity task queue's own rate limit, which builds before the TCS guard
// owned the cap set with `tcs rate` (the server keeps it, over the workers'): left there, it would
// hold retries below the cap in force. Nothing to clear is the usual case; a server without the API
// has none.
func clearQueueRate(ctx context.Context, c sdkclient.Client, namespace string, cmd *contract.TCSCommand) {
	_, err := c.WorkflowService().UpdateTaskQueueConfig(ctx, &workflowservice.UpdateTaskQueueConfigRequest{
		Namespace: namespace, Identity: "writeback-starter", TaskQueue: contract.TaskQueue,
		TaskQueueType: enums.TASK_QUEUE_TYPE_ACTIVITY,
		UpdateQueueRateLimit: &workflowservice.UpdateTaskQueueConfigRequest_RateLimitUpdate{
			Reason: fmt.Sprintf("writeback tcs rate by %s: the TCS guard owns the cap", orDash(cmd.By))}})
	var unimplemented *serviceerror.Unimplemented
	if err != nil && !errors.As(err, &unimplemented) {
		fmt.Fprintln(stderr, "warning: cannot clear the task queue's own rate limit (an earlier build may have set one):", err)
	}
}
