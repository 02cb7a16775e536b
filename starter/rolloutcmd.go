package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/config"
	"github.com/tis-writeback/writeback/internal/kube"
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
first and, with --wait, waits and prints how it ended: exit 0 when B became current, 3 when the rollout
ended without making it current (rolled back, not started, inconclusive, cancelled), 1 when it could
not be started or followed, or workers could not be removed. A rollout of
the deployment already running is waited for rather than started again (a retried Job).

In a Kubernetes pod (the Helm chart's rollout Job), --build-workers and --previous-workers name the
Deployments of B's workers and of the build B replaces: when the rollout ends, the one of a build
that gets no records (neither current nor ramping) is scaled to 0 with the pod's ServiceAccount.
Every writeback workflow auto-upgrades, so nothing stays on a build that is no longer routed to: its
parked dead letters and waiting records continue on the current build.`},
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
			buildWorkers := fs.String("build-workers", "", "Kubernetes Deployment of the build's workers: scaled to 0 if the build ends up getting no records (implies --wait)")
			previousWorkers := fs.String("previous-workers", "", "Kubernetes Deployment of the replaced build's workers (--previous-build-id): scaled to 0 once it gets no records (implies --wait)")
			previousBuild := fs.String("previous-build-id", "", "the build being replaced: refused unless it, or the build, is current")
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
				if (*previousWorkers != "") != (*previousBuild != "") {
					fmt.Fprintln(stderr, "--previous-workers needs --previous-build-id (the build whose workers they are), and the other way round")
					return 2
				}
				var kc *kube.Client
				if *buildWorkers != "" || *previousWorkers != "" {
					var err error
					if kc, err = kube.InCluster(kube.ServiceAccountDir); err != nil {
						fmt.Fprintln(stderr, err, "(--build-workers, --previous-workers)")
						return 2
					}
					*wait = true
				}
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
					if *previousBuild != "" {
						// A release rolled back (helm rollback) to an older rollout must not take the
						// records from a build that neither of its two builds is.
						rt, err := ops.Routing(ctx, c, in.Deployment)
						if err != nil {
							fmt.Fprintln(stderr, err)
							return 1
						}
						if rt.Current != *previousBuild && rt.Current != in.BuildID {
							var cur *string // nil: unversioned workers
							if rt.Current != "" {
								cur = &rt.Current
							}
							fmt.Fprintf(stderr, "deployment %s: current is %s, neither build %s (previous) nor %s: nothing rolled out, no workers removed\n",
								in.Deployment, buildName(cur), *previousBuild, in.BuildID)
							return 1
						}
					}
					rep, code := runRollout(ctx, c, in, *wait, kc != nil)
					if code != 0 || !*wait {
						return code
					}
					printRollout(rep)
					if rep.State != contract.RolloutPromoted {
						code = exitNotPromoted
					}
					if kc != nil && !removeIdleWorkers(ctx, c, kc, rep, map[string]string{in.BuildID: *buildWorkers, *previousBuild: *previousWorkers}) {
						code = 1
					}
					return code
				})
			}
		})
}

// runRollout starts the rollout (or, when waiting, joins the one of the deployment already running)
// and, with wait, returns how it ended. once (the chart's Job): a build whose last rollout has ended is
// not rolled out again (a retried Job, or an upgrade that kept the values of one that was rolled
// back); its report is returned.
func runRollout(ctx context.Context, c sdkclient.Client, in contract.RolloutInput, wait, once bool) (contract.RolloutReport, int) {
	last, running, err := ops.RolloutOf(ctx, c, in.Deployment)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return contract.RolloutReport{}, 1
	}
	if once && last != nil && !running && last.BuildID == in.BuildID {
		fmt.Fprintf(stdout, "rollout %s: build %s was rolled out before (ended %s): not started again; a new build, or versioning rollout by hand, starts one\n",
			last.ID, in.BuildID, last.State)
		return *last, 0
	}
	run, err := ops.StartRollout(ctx, c, in)
	if errors.Is(err, ops.ErrRolloutRunning) && wait {
		fmt.Fprintln(stderr, err.Error()+": waiting for it")
		run, err = c.GetWorkflow(ctx, contract.RolloutWorkflowID(in.Deployment), ""), nil
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return contract.RolloutReport{}, 1
	}
	fmt.Fprintln(stdout, "rollout", run.GetID())
	if !wait {
		return contract.RolloutReport{}, 0
	}
	var rep contract.RolloutReport
	if err := run.Get(ctx, &rep); err != nil {
		// cancelled, terminated, failed: how it ended is in its memo
		ended, _, rerr := ops.RolloutOf(ctx, c, in.Deployment)
		if rerr != nil || ended == nil || !ops.RolloutEnded(ended.State) {
			fmt.Fprintln(stderr, "rollout", run.GetID()+":", err)
			return rep, 1
		}
		rep = *ended
	}
	if rep.BuildID != in.BuildID {
		printRollout(rep)
		fmt.Fprintf(stderr, "the rollout that was running was of build %s, not %s: start it again\n", rep.BuildID, in.BuildID)
		return rep, 1
	}
	return rep, 0
}

// exitNotPromoted is the exit code of a rollout that ended without making its build current: an
// answer, not an error (the chart's rollout Job does not retry it).
const exitNotPromoted = 3

func printRollout(rep contract.RolloutReport) {
	for _, s := range rep.Steps {
		fmt.Fprintf(stdout, "  step %3.0f%%  %s  %s\n", s.Percentage, s.JudgedAt.Sub(s.StartedAt).Round(time.Second), s.Verdict)
	}
	fmt.Fprintf(stdout, "%s: build %s %s (%s)\n", rep.ID, rep.BuildID, rep.State, rep.Reason)
}

// removeIdleWorkers scales to 0 the Deployment (workers, by build) of each build the deployment no
// longer routes records to, once the routing shows another build current; it says what it did.
func removeIdleWorkers(ctx context.Context, c sdkclient.Client, kc *kube.Client, rep contract.RolloutReport, workers map[string]string) bool {
	rt, err := ops.Routing(ctx, c, rep.Deployment)
	if err != nil {
		fmt.Fprintln(stderr, "workers left running:", err)
		return false
	}
	ok := true
	for build, name := range workers {
		switch {
		case name == "" || build == "":
		case rt.Current == build || rt.Ramping == build:
			fmt.Fprintf(stdout, "workers of build %s (Deployment %s) kept: it gets records\n", build, name)
		case rt.Current == "":
			fmt.Fprintf(stdout, "workers of build %s (Deployment %s) kept: the deployment has no versioned current build\n", build, name)
		default:
			if err := kc.ScaleDeployment(ctx, name, 0); err != nil {
				fmt.Fprintln(stderr, "workers left running:", err)
				ok = false
				continue
			}
			fmt.Fprintf(stdout, "workers of build %s removed (Deployment %s scaled to 0): build %s is current\n", build, name, rt.Current)
		}
	}
	return ok
}
