package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/config"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/starter/ops"
)

// rolloutCmd is `starter versioning rollout`: a new build taken to current in ramp steps, each judged
// by its own records against the current build's, rolled back at the first step where they do worse.
func rolloutCmd() *cobra.Command {
	return leaf(&cobra.Command{Use: "rollout", Args: cobra.NoArgs,
		Short: "take a build to current in ramp steps (10 %, 50 %, current), rolled back when its records do worse",
		Long: `rollout --deployment-name N --build-id B: once workers of build B poll, ramp it to each --steps
percentage of the records in turn, each for --step, then make it current. Each step compares B's records
(those its workers ran) with the current build's over the step: more dead-lettered (by --max-dead-letter-excess)
or more left unfinished (by --max-unfinished-excess) rolls B back at once, the ramp removed and the reason
logged and alerted. The rollout is a workflow (kind rollout in the Temporal UI): it prints "rollout ID"
first and, with --wait, waits and prints how it ended (exit 1 unless B became current).`},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			name := deploymentFlag(fs)
			var buildID string
			config.Set{FS: fs}.String(&buildID, "build-id", "TEMPORAL_BUILD_ID", "", "the build to roll out")
			d := contract.RolloutInput{}.WithDefaults()
			steps := fs.String("steps", "10,50", "ramp percentages before the build becomes current")
			step := fs.Duration("step", d.StepDuration, "how long each step runs before it is judged")
			minRecords := fs.Int("min-records", d.MinRecords, "records of the build a step needs to judge it (a quieter step is extended, up to 3 times)")
			dlExcess := fs.Float64("max-dead-letter-excess", d.MaxDeadLetterExcess, "how much more of its records may dead-letter than of the current build's (0.05: 5 points)")
			unExcess := fs.Float64("max-unfinished-excess", d.MaxUnfinishedExcess, "how much more of its records may stay unfinished than of the current build's")
			waitWorkers := fs.Duration("wait-for-workers", d.WaitForWorkers, "how long to wait for the build's workers to poll")
			wait := fs.Bool("wait", false, "wait for the rollout's end and print it")
			reason := fs.String("reason", "", "why (in the rollout's history)")
			by := fs.String("by", currentUser(), "who")
			return func([]string) int {
				pcts, err := ops.ParseSteps(*steps)
				if err != nil {
					fmt.Fprintln(stderr, err)
					return 2
				}
				in := contract.RolloutInput{Deployment: *name, BuildID: buildID, Steps: pcts, StepDuration: *step, MinRecords: *minRecords,
					MaxDeadLetterExcess: *dlExcess, MaxUnfinishedExcess: *unExcess, WaitForWorkers: *waitWorkers, By: *by, Reason: *reason}
				if err := in.Validate(); err != nil {
					fmt.Fprintln(stderr, err, "(--deployment-name, --build-id, --steps)")
					return 2
				}
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
					run, err := ops.StartRollout(ctx, c, in)
					if err != nil {
						fmt.Fprintln(stderr, err)
						return 1
					}
					fmt.Fprintln(stdout, "rollout", run.GetID())
					if !*wait {
						return 0
					}
					var rep contract.RolloutReport
					if err := run.Get(ctx, &rep); err != nil {
						fmt.Fprintln(stderr, "rollout", run.GetID()+":", err)
						return 1
					}
					printRollout(rep)
					if rep.State != contract.RolloutPromoted {
						return 1
					}
					return 0
				})
			}
		})
}

func printRollout(rep contract.RolloutReport) {
	for _, s := range rep.Steps {
		fmt.Fprintf(stdout, "  step %3.0f%%  %s  %s\n", s.Percentage, s.JudgedAt.Sub(s.StartedAt).Round(time.Second), s.Verdict)
	}
	fmt.Fprintf(stdout, "%s: build %s %s (%s)\n", rep.ID, rep.BuildID, rep.State, rep.Reason)
}
