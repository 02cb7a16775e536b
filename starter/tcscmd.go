package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/temporalclient"
)

// runTCS is `starter tcs status|hold|release|rate`: the TCS mode for every worker, kept in the TCS
// control workflow.
func runTCS(args []string) int {
	usage := `Usage: ` + prog + ` tcs <status|hold|release|rate> [flags]

  status [--json]                 the TCS mode in force for every worker (normal, outage, hold) and the rate cap
  hold --reason R [--by B]        within 10 s no worker sends TCS any request, until release; no record's budget is spent
  release [--reason R] [--by B]   requests flow again; the records held back are woken
  rate N [--reason R] [--by B]    the cap on TCS requests per second for all workers together, within 10 s
  rate --reset                    back to the workers' TCS_RATE
`
	sub, rest, code, ok := subcommand(args, usage)
	if !ok {
		return code
	}
	fs := newFlagSet("tcs "+sub, "The TCS mode for every worker, kept in Temporal (workflow "+contract.TCSControlWorkflowID+").")
	tc := temporalclient.Flags(fs)
	asJSON := fs.Bool("json", false, "status: print JSON")
	reason := fs.String("reason", "", "why (kept with the change and logged by the workers)")
	by := fs.String("by", currentUser(), "who")
	reset := fs.Bool("reset", false, "rate: back to the workers' TCS_RATE")
	var rate float64
	if sub == "rate" && len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
		n, err := strconv.ParseFloat(rest[0], 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "rate %q: want a number of requests per second above 0\n", rest[0])
			return 2
		}
		rate, rest = n, rest[1:]
	}
	if code, ok := parse(fs, rest); !ok {
		return code
	}
	var cmd *contract.TCSCommand
	switch sub {
	case "status":
	case "hold":
		if *reason == "" {
			fmt.Fprintln(os.Stderr, "tcs hold needs --reason: every worker logs who held TCS and why")
			return 2
		}
		cmd = &contract.TCSCommand{Op: contract.TCSHold, Reason: *reason, By: *by}
	case "release":
		cmd = &contract.TCSCommand{Op: contract.TCSRelease, Reason: *reason, By: *by}
	case "rate":
		switch {
		case *reset:
			cmd = &contract.TCSCommand{Op: contract.TCSRateReset, Reason: *reason, By: *by}
		case rate > 0:
			cmd = &contract.TCSCommand{Op: contract.TCSRate, Rate: rate, Reason: *reason, By: *by}
		default:
			fmt.Fprintln(os.Stderr, "tcs rate needs N (requests per second) or --reset")
			return 2
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown tcs command %q\n\n%s", sub, usage)
		return 2
	}
	return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
		if cmd != nil {
			_, err := c.SignalWithStartWorkflow(ctx, contract.TCSControlWorkflowID, contract.SignalTCSCommand, *cmd,
				contract.TCSControlOptions(), contract.TCSControlWorkflowType, nil)
			if err != nil {
				fmt.Fprintln(os.Stderr, "cannot reach the TCS control:", err)
				return 1
			}
			if cmd.Op == contract.TCSRate || cmd.Op == contract.TCSRateReset {
				var unimplemented *serviceerror.Unimplemented
				switch err := setQueueRate(ctx, c, tc.Namespace, cmd); {
				case errors.As(err, &unimplemented):
					// A server without the API: the governors apply the cap anyway; only a cap above
					// TCS_RATE is then short of it for retries.
					fmt.Fprintln(os.Stderr, "warning: this Temporal server cannot set a task queue's rate limit:", err)
				case err != nil:
					// The workers follow the control; the queue's limit did not change: say so, and fail.
					fmt.Fprintln(os.Stderr, "the workers' cap changed, but the task queue's rate limit did not (run the command again):", err)
					return 1
				}
			}
		}
		st, err := tcsStatus(ctx, c, cmd)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// The cap in force is what the workers present report, never a setting of this CLI's own:
		// with no worker present and no operator's rate, none is in force (0).
		unreported := st.Rate == 0 && st.RateDisagreement == ""
		if *asJSON {
			out := map[string]any{"mode": st.Mode, "since": st.Since, "reason": st.Reason, "by": st.By, "rate": st.Rate, "rateSource": st.RateSource,
				"workers": len(st.Workers)}
			if st.RateDisagreement != "" {
				out["rateDisagreement"] = st.RateDisagreement
			}
			b, _ := json.Marshal(out)
			fmt.Println(string(b))
			return 0
		}
		fmt.Printf("mode   %s since %s", st.Mode, orDash(st.Since))
		if st.Reason != "" || st.By != "" {
			fmt.Printf(" (by %s: %s)", orDash(st.By), orDash(st.Reason))
		}
		switch {
		case st.RateDisagreement != "":
			fmt.Printf("\nrate   the workers disagree: %s (each enforces its share of its own)\n", st.RateDisagreement)
		case unreported:
			fmt.Printf("\nrate   none reported: no worker present\n")
		default:
			fmt.Printf("\nrate   %g requests/s for all workers (%s)\n", st.Rate, st.RateSource)
		}
		fmt.Printf("workers %d present, each taking an equal share\n", len(st.Workers))
		if cmd != nil {
			fmt.Println("workers apply it within 10 s")
		}
		return 0
	})
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

// setQueueRate gives the activity task queue the same limit as `tcs rate N` (unset on --reset).
// Each worker also sets the queue's limit to its TCS_RATE (TaskQueueActivitiesPerSecond, which holds
// a backlog of regular activities on the server rather than in the workers); without this a cap
// raised above TCS_RATE would not reach the regular activities. A limit set through the API
// overrides the workers' and is kept by the server, so it holds across worker restarts too.
func setQueueRate(ctx context.Context, c sdkclient.Client, namespace string, cmd *contract.TCSCommand) error {
	upd := &workflowservice.UpdateTaskQueueConfigRequest_RateLimitUpdate{
		Reason: fmt.Sprintf("writeback tcs rate by %s: %s", orDash(cmd.By), orDash(cmd.Reason))}
	if cmd.Op == contract.TCSRate {
		upd.RateLimit = &taskqueuepb.RateLimit{RequestsPerSecond: float32(cmd.Rate)}
	}
	_, err := c.WorkflowService().UpdateTaskQueueConfig(ctx, &workflowservice.UpdateTaskQueueConfigRequest{
		Namespace: namespace, Identity: "writeback-starter", TaskQueue: contract.TaskQueue,
		TaskQueueType: enums.TASK_QUEUE_TYPE_ACTIVITY, UpdateQueueRateLimit: upd})
	return err
}
