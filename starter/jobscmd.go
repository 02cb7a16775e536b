package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/spf13/cobra"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/starter/ops"
)

// runJob starts a retry job for the running dead letters among targets (the others are in its total,
// as skipped), prints `job <ID>` first,
// then (unless noWait) follows it and ends with its outcome table.
func runJob(ctx context.Context, c sdkclient.Client, signalName string, targets []ops.Target, in contract.JobInput,
	wait time.Duration, noWait bool) int {
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	in.ID = contract.RetryJobID(time.Now(), hex.EncodeToString(suffix))
	// The job's plan is --dry-run's (without reading each record's retries: the record itself refuses
	// a retry at --max-retries). Skipped records are in the job's total, never signalled.
	plan := ops.Plan(targets, signalName, in.MaxRetries, nil)
	for _, st := range plan {
		if st.Skip == "" {
			in.IDs = append(in.IDs, st.WorkflowID)
			continue
		}
		in.SkippedAtStart++
		if len(in.SkippedExamples) < 20 {
			in.SkippedExamples = append(in.SkippedExamples, contract.JobFailure{WorkflowID: st.WorkflowID, What: "skipped", Reason: st.Skip})
		}
	}
	_, err := c.ExecuteWorkflow(ctx, sdkclient.StartWorkflowOptions{ID: in.ID, TaskQueue: contract.TaskQueue,
		Priority:      temporal.Priority{PriorityKey: contract.JobPriority},
		StaticSummary: fmt.Sprintf("%s job: %d record(s), by %s: %s", signalName, len(in.IDs), in.By, in.Reason)},
		contract.RetryJobWorkflowType, in)
	if err != nil {
		fmt.Fprintln(stderr, "cannot start the job:", err)
		return 1
	}
	fmt.Fprintf(stdout, "job %s\n", in.ID)
	for _, st := range plan {
		if st.Skip != "" {
			fmt.Fprintf(stdout, "skipped    %s: %s\n", st.WorkflowID, st.Skip)
		}
	}
	fmt.Fprintf(stdout, "%d record(s) in the job; follow it with: %s jobs show %s\n", len(in.IDs), prog, in.ID)
	if noWait || wait <= 0 {
		return 0
	}
	st, err := followJob(ctx, c, in.ID, wait)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: signalled %d, skipped %d (at the start %d, in the job %d)\n", signalName,
		st.Signalled, st.Skipped, in.SkippedAtStart, st.Skipped-in.SkippedAtStart)
	printJob(st)
	return 0
}

// followJob polls a job's memo until it is no longer running, or wait has passed.
func followJob(ctx context.Context, c sdkclient.Client, id string, wait time.Duration) (contract.JobStatus, error) {
	deadline := time.Now().Add(wait)
	for {
		st, err := jobStatus(ctx, c, id)
		if err == nil && (st.State != contract.JobRunning || time.Now().After(deadline)) {
			return st, nil
		}
		if err != nil && time.Now().After(deadline) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func jobStatus(ctx context.Context, c sdkclient.Client, id string) (contract.JobStatus, error) {
	var st contract.JobStatus
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return st, fmt.Errorf("job %s: %w", id, err)
	}
	p, ok := d.GetWorkflowExecutionInfo().GetMemo().GetFields()[contract.MemoJob]
	if !ok {
		return st, fmt.Errorf("job %s has not published its state yet", id)
	}
	if err := json.Unmarshal(p.GetData(), &st); err != nil {
		return st, fmt.Errorf("job %s: %w", id, err)
	}
	return st, nil
}

// printJob prints a job's state and the outcome table.
func printJob(st contract.JobStatus) {
	fmt.Fprintf(stdout, "job %s: %s", st.ID, st.State)
	if st.HaltReason != "" {
		fmt.Fprintf(stdout, " (%s)", st.HaltReason)
	}
	fmt.Fprintf(stdout, ", by %s: %s, started %s\n", orDash(st.By), orDash(st.Reason), st.StartedAt)
	for _, f := range st.Recent {
		if f.What == contract.JobOutcomeDeadLettered {
			fmt.Fprintf(stdout, "dead-lettered again  %s: %s\n", f.WorkflowID, f.Reason)
		} else {
			fmt.Fprintf(stdout, "%-20s %s: %s\n", f.What, f.WorkflowID, f.Reason)
		}
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "completed\tdead-lettered again\tstill updating\tabandoned\tskipped\tnot yet signalled\t")
	fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t%d\t\n", st.Completed, st.DeadLettered, st.Updating, st.Abandoned, st.Skipped, st.Pending)
	w.Flush()
}

func readIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// An ID may end in a space (a filename can): only the indent --dry-run prints is trimmed.
		line := strings.TrimPrefix(strings.TrimSuffix(sc.Text(), "\r"), "  ")
		// The lines around the IDs that --dry-run prints are not IDs.
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "would signal") || strings.HasPrefix(line, "skipped ") ||
			strings.Contains(line, ": signalled ") || strings.Contains(line, ": would signal ") {
			continue
		}
		ids = append(ids, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s holds no workflow IDs", path)
	}
	return ids, nil
}

// jobsCmd is `starter jobs` (the list), `jobs show ID [--json]`, `jobs cancel ID`, `jobs resume ID`.
func jobsCmd() *cobra.Command {
	list := leaf(&cobra.Command{Use: "jobs", Short: "the retry jobs: list, show JOB-ID [--json], cancel JOB-ID, resume JOB-ID", Args: cobra.NoArgs,
		Long: `Lists the retry jobs (retry/abandon with --all, --query, --group or --ids-file), or shows,
cancels or resumes one: jobs show JOB-ID [--json], jobs cancel JOB-ID, jobs resume JOB-ID (a halted job goes on).`},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			asJSON := fs.Bool("json", false, `print JSON: an array of what jobs show --json prints`)
			return func([]string) int {
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int { return listJobs(ctx, c, *asJSON) })
			}
		})
	show := leaf(&cobra.Command{Use: "show JOB-ID", Short: "a job's state and outcome table", Args: exactArgs(1, "a JOB-ID")},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			asJSON := fs.Bool("json", false, `print JSON: {"id","state","total","signalled","completed","deadLettered","abandoned","skipped","pending","haltReason","by","reason","startedAt"}`)
			return func(args []string) int {
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
					st, err := jobStatus(ctx, c, args[0])
					if err != nil {
						fmt.Fprintln(stderr, err)
						return 1
					}
					if *asJSON {
						return printJSON(jobJSON(st), 0)
					}
					printJob(st)
					return 0
				})
			}
		})
	list.AddCommand(show,
		jobSignalCmd("cancel", contract.SignalJobCancel, "stop the job: it signals no further record (within a second)"),
		jobSignalCmd("resume", contract.SignalJobResume, "a halted job goes on"))
	return list
}

// jobSignalCmd is `jobs cancel ID` and `jobs resume ID`.
func jobSignalCmd(verb, signalName, short string) *cobra.Command {
	return leaf(&cobra.Command{Use: verb + " JOB-ID", Short: short, Args: exactArgs(1, "a JOB-ID")},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			return func(args []string) int {
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
					err := c.SignalWorkflow(ctx, args[0], "", signalName, nil)
					var nf *serviceerror.NotFound
					if errors.As(err, &nf) {
						// Ended (or never was): say which. A cancel finds what it asked for, a resume does not.
						st, serr := jobStatus(ctx, c, args[0])
						if serr != nil {
							fmt.Fprintf(stderr, "%s job %s: no such job\n", verb, args[0])
							return 1
						}
						fmt.Fprintf(stdout, "job %s has already ended (%s): nothing to %s\n", args[0], st.State, verb)
						if signalName == contract.SignalJobCancel {
							return 0
						}
						return 1
					}
					if err != nil {
						fmt.Fprintf(stderr, "%s job %s: %v\n", verb, args[0], err)
						return 1
					}
					fmt.Fprintf(stdout, "%s sent to job %s\n", verb, args[0])
					return 0
				})
			}
		})
}

// jobJSON is a job as `jobs show --json` and `jobs --json` print it.
func jobJSON(st contract.JobStatus) map[string]any {
	return map[string]any{"id": st.ID, "state": st.State, "total": st.Total, "signalled": st.Signalled,
		"completed": st.Completed, "deadLettered": st.DeadLettered, "abandoned": st.Abandoned, "skipped": st.Skipped,
		"pending": st.Pending + st.Updating + st.NotKnown, "notKnown": st.NotKnown, "haltReason": st.HaltReason, "by": st.By,
		"reason": st.Reason, "startedAt": st.StartedAt}
}

func listJobs(ctx context.Context, c sdkclient.Client, asJSON bool) int {
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType=%q", contract.RetryJobWorkflowType), PageSize: 100})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	jobs := make([]contract.JobStatus, 0, len(resp.GetExecutions()))
	for _, e := range resp.GetExecutions() {
		var st contract.JobStatus
		if p, ok := e.GetMemo().GetFields()[contract.MemoJob]; ok {
			_ = json.Unmarshal(p.GetData(), &st)
		}
		if st.ID == "" {
			st.ID = e.GetExecution().GetWorkflowId()
		}
		jobs = append(jobs, st)
	}
	if asJSON {
		out := make([]map[string]any, 0, len(jobs))
		for _, st := range jobs {
			out = append(out, jobJSON(st))
		}
		return printJSON(out, 0)
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "JOB\tSTATE\tTOTAL\tSIGNALLED\tCOMPLETED\tDEAD-LETTERED AGAIN\tSKIPPED\tSTARTED\tBY")
	for _, st := range jobs {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", st.ID, orDash(st.State), st.Total, st.Signalled, st.Completed,
			st.DeadLettered, st.Skipped, orDash(st.StartedAt), orDash(st.By))
	}
	w.Flush()
	return 0
}

// runHistory is `starter history --workflow-id ID [--json]`: a record's timeline.
func historyCmd() *cobra.Command {
	return leaf(&cobra.Command{Use: "history", Short: "a record's timeline: message, attempts, dead-letterings, operator actions, state now", Args: cobra.NoArgs,
		Long: `Prints a record's timeline from its Temporal history: the message, each attempt to write it and
its error, each dead-lettering with its group and reason, each operator action (signal, who, why, job,
correction), and the state now.`},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			id := fs.String("workflow-id", "", "the record's workflow ID")
			asJSON := fs.Bool("json", false, "print JSON")
			return func([]string) int {
				if *id == "" {
					fmt.Fprintln(stderr, "--workflow-id is required")
					return 2
				}
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
					tl, err := ops.History(ctx, c, *id)
					if err != nil {
						fmt.Fprintln(stderr, err)
						return 1
					}
					if *asJSON {
						fmt.Fprintln(stdout, tl.JSON())
						return 0
					}
					fmt.Fprintln(stdout, *id)
					for _, e := range tl.Entries {
						line := fmt.Sprintf("%s  %-13s %s", e.Time.Format(time.RFC3339), e.What, e.Detail)
						if e.Group != "" {
							line += " [" + e.Group + "]"
						}
						if e.Reason != "" {
							line += " — " + e.Reason
						}
						if e.By != "" {
							line += " (by " + e.By + ")"
						}
						if e.Job != "" {
							line += " (job " + e.Job + ")"
						}
						fmt.Fprintln(stdout, line)
					}
					n := tl.Now
					fmt.Fprintf(stdout, "now: %s, %d attempt(s), %d retry(ies), last error %q\n", orDash(n.State), n.Attempts, n.Retries, n.LastError)
					return 0
				})
			}
		})
}
