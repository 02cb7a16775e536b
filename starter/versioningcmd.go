package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/spf13/cobra"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/config"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/starter/ops"
)

// runVersioning is `starter versioning status|set-current`: which build of the workers gets the
// records under Worker Versioning. A rolling deploy leaves no worker of the old build, so the new
// build must become the deployment's current version; the Helm chart's hook runs set-current after
// every install, upgrade and rollback.
func versioningCmd() *cobra.Command {
	status := leaf(&cobra.Command{Use: "status", Short: "the current (and ramping) build and every build's drainage", Args: cobra.NoArgs},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			name := deploymentFlag(fs)
			asJSON := fs.Bool("json", false, `print JSON: {"deployment","current","ramping","rampingPercentage","builds":[{"buildId","createdAt","state"}]}; current and ramping are build IDs, null for unversioned workers`)
			require := fs.String("require-current", "", "builds, comma-separated: exit 1 unless one of them is current (the chart's check before a rollout's upgrade or rollback)")
			return func([]string) int {
				if *name == "" {
					fmt.Fprintln(stderr, "versioning status needs --deployment-name (or TEMPORAL_DEPLOYMENT_NAME)")
					return 2
				}
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
					name := *name
					h := c.WorkerDeploymentClient().GetHandle(name)
					d, err := h.Describe(ctx, sdkclient.WorkerDeploymentDescribeOptions{})
					if err != nil {
						fmt.Fprintf(stderr, "deployment %s: %v\n", name, err)
						return 1
					}
					st := statusOf(name, d.Info)
					if *require != "" {
						if st.Current == nil || !slices.Contains(strings.Split(*require, ","), *st.Current) {
							fmt.Fprintf(stderr, "deployment %s: current is %s, not one of the builds %s: refused (this release would remove the current build's workers)\n",
								name, buildName(st.Current), *require)
							return 1
						}
					}
					st.Rollout = ops.LastRollout(ctx, c, name)
					if *asJSON {
						return printJSON(st, 0)
					}
					fmt.Fprintf(stdout, "deployment %s: current %s", name, buildName(st.Current))
					if st.Ramping != nil {
						fmt.Fprintf(stdout, ", ramping %s at %.0f%%", buildName(st.Ramping), st.RampingPercentage)
					}
					fmt.Fprintln(stdout)
					for _, b := range st.Builds {
						fmt.Fprintf(stdout, "  build %-24s created %s  %s\n", b.BuildID, b.CreatedAt.Format(time.RFC3339), b.State)
					}
					if r := st.Rollout; r != nil {
						fmt.Fprintf(stdout, "rollout %s: build %s %s at %.0f%%", r.ID, r.BuildID, r.State, r.Percentage)
						if r.Reason != "" {
							fmt.Fprintf(stdout, " (%s)", r.Reason)
						}
						fmt.Fprintln(stdout)
					}
					return 0
				})
			}
		})
	setCurrentCmd := leaf(&cobra.Command{Use: "set-current", Args: cobra.NoArgs,
		Short: "make a build (--build-id) or unversioned workers (--unversioned) the ones that get the records",
		Long: `set-current --deployment-name N --build-id B: make build B the one that gets the records, waiting
(--wait) until workers of B poll; every running record moves to B.
set-current [--deployment-name N] --unversioned: make unversioned workers (versioning turned off) the
ones that get the records: of deployment N, or, without a name, of every deployment whose current build
serves the writeback task queue.`},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			name := deploymentFlag(fs)
			var buildID string
			config.Set{FS: fs}.String(&buildID, "build-id", "TEMPORAL_BUILD_ID", "", "the build to make current (the chart's worker.versioning.buildId)")
			unversioned := fs.Bool("unversioned", false, "make unversioned workers current (Worker Versioning turned off)")
			wait := fs.Duration("wait", 5*time.Minute, "how long to wait for workers of the build to poll")
			by := fs.String("by", currentUser(), "who (kept by Temporal as the deployment's last modifier)")
			return func([]string) int {
				switch {
				case (buildID == "") == !*unversioned:
					fmt.Fprintln(stderr, "versioning set-current needs exactly one of --build-id (or TEMPORAL_BUILD_ID) and --unversioned")
					return 2
				case *name == "" && !*unversioned:
					fmt.Fprintln(stderr, "versioning set-current needs --deployment-name (or TEMPORAL_DEPLOYMENT_NAME)")
					return 2
				}
				return withTemporal(tc, func(ctx context.Context, c sdkclient.Client) int {
					name := *name
					if *unversioned {
						return setUnversioned(ctx, c, name, "starter versioning set-current --unversioned ("+*by+")")
					}
					h := c.WorkerDeploymentClient().GetHandle(name)
					prev, err := setCurrent(ctx, h, buildID, "starter versioning set-current ("+*by+")", *wait)
					if err != nil {
						fmt.Fprintf(stderr, "deployment %s: build %s was not made current: %v\n", name, buildID, err)
						return 1
					}
					fmt.Fprintf(stdout, "deployment %s: build %s is current (before: %s)\n", name, buildID, buildName(buildOf(prev)))
					return 0
				})
			}
		})
	return group(&cobra.Command{Use: "versioning", Short: "Worker Versioning: status, set-current (the build that gets the records; the chart's hook runs it), rollout (in judged steps)",
		Long: "Worker Versioning: the build of the workers that gets the records."}, status, setCurrentCmd, rolloutCmd())
}

func deploymentFlag(fs *flag.FlagSet) *string {
	var name string
	config.Set{FS: fs}.String(&name, "deployment-name", "TEMPORAL_DEPLOYMENT_NAME", "", "the worker deployment (the chart's worker.versioning.deploymentName)")
	return &name
}

// deploymentStatus is what `versioning status` prints; a nil build ID means unversioned workers.
type deploymentStatus struct {
	Deployment        string        `json:"deployment"`
	Current           *string       `json:"current"`
	Ramping           *string       `json:"ramping"`
	RampingPercentage float32       `json:"rampingPercentage"`
	Builds            []buildStatus `json:"builds"`
	// Rollout is the deployment's latest rollout (running or ended), null when there was none.
	Rollout *contract.RolloutReport `json:"rollout"`
}

type buildStatus struct {
	BuildID   string    `json:"buildId"`
	CreatedAt time.Time `json:"createdAt"`
	// State is current, ramping, or, of a build no longer current, its running records' drainage:
	// "drainage draining", "drainage drained" or "drainage -" (not yet known).
	State string `json:"state"`
}

func statusOf(name string, info sdkclient.WorkerDeploymentInfo) deploymentStatus {
	rc := info.RoutingConfig
	st := deploymentStatus{Deployment: name, Current: buildOf(rc.CurrentVersion), Builds: []buildStatus{}}
	if rc.RampingVersion != nil {
		st.Ramping, st.RampingPercentage = buildOf(rc.RampingVersion), rc.RampingVersionPercentage
	}
	for _, v := range info.VersionSummaries {
		state := "drainage " + drainage(v.DrainageStatus)
		switch {
		case st.Current != nil && v.Version.BuildID == *st.Current:
			state = "current"
		case st.Ramping != nil && v.Version.BuildID == *st.Ramping:
			state = "ramping"
		}
		st.Builds = append(st.Builds, buildStatus{BuildID: v.Version.BuildID, CreatedAt: v.CreateTime.UTC(), State: state})
	}
	return st
}

func buildOf(v *worker.WorkerDeploymentVersion) *string {
	if v == nil || v.BuildID == "" {
		return nil
	}
	return &v.BuildID
}

func buildName(id *string) string {
	if id == nil {
		return "unversioned workers"
	}
	return "build " + *id
}

// setUnversioned makes unversioned workers current in deployment name or, with no name, in every
// deployment whose current build serves the writeback task queue (the chart's hook with versioning
// off does not know the name the release used before).
func setUnversioned(ctx context.Context, c sdkclient.Client, name, identity string) int {
	names := []string{name}
	if name == "" {
		var err error
		if names, err = deploymentsServing(ctx, c, contract.TaskQueue); err != nil {
			fmt.Fprintln(stderr, "cannot list the worker deployments:", err)
			return 1
		}
		if len(names) == 0 {
			fmt.Fprintf(stdout, "no worker deployment has a current build on task queue %s: unversioned workers get the records\n", contract.TaskQueue)
			return 0
		}
	}
	for _, n := range names {
		prev, err := setCurrent(ctx, c.WorkerDeploymentClient().GetHandle(n), "", identity, 0)
		if err != nil {
			fmt.Fprintf(stderr, "deployment %s: unversioned workers were not made current: %v\n", n, err)
			return 1
		}
		fmt.Fprintf(stdout, "deployment %s: unversioned workers are current (before: %s)\n", n, buildName(buildOf(prev)))
	}
	return 0
}

// deploymentsServing lists the deployments whose current build polls task queue tq.
func deploymentsServing(ctx context.Context, c sdkclient.Client, tq string) ([]string, error) {
	dc := c.WorkerDeploymentClient()
	it, err := dc.List(ctx, sdkclient.WorkerDeploymentListOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for it.HasNext() {
		d, err := it.Next()
		if err != nil {
			return nil, err
		}
		cur := d.RoutingConfig.CurrentVersion
		if cur == nil || cur.BuildID == "" {
			continue
		}
		v, err := dc.GetHandle(d.Name).DescribeVersion(ctx, sdkclient.WorkerDeploymentDescribeVersionOptions{BuildID: cur.BuildID})
		if err != nil {
			return nil, fmt.Errorf("deployment %s build %s: %w", d.Name, cur.BuildID, err)
		}
		if slices.ContainsFunc(v.Info.TaskQueuesInfos, func(q sdkclient.WorkerDeploymentTaskQueueInfo) bool { return q.Name == tq }) {
			out = append(out, d.Name)
		}
	}
	return out, nil
}

// setCurrent makes buildID current (unversioned workers when it is empty), retrying while Temporal refuses because no worker of that build
// has polled yet (a rollout still starting its pods) or is briefly unavailable, until wait has passed.
// A refusal that waiting cannot change (a bad argument, no permission) ends it at once.
func setCurrent(ctx context.Context, h sdkclient.WorkerDeploymentHandle, buildID, identity string, wait time.Duration) (*worker.WorkerDeploymentVersion, error) {
	deadline := time.Now().Add(wait)
	lastSaid := time.Time{}
	for {
		resp, err := h.SetCurrentVersion(ctx, sdkclient.WorkerDeploymentSetCurrentVersionOptions{BuildID: buildID, Identity: identity})
		if err == nil {
			return resp.PreviousVersion, nil
		}
		var invalid *serviceerror.InvalidArgument
		var denied *serviceerror.PermissionDenied
		if errors.As(err, &invalid) || errors.As(err, &denied) || ctx.Err() != nil || time.Now().After(deadline) {
			return nil, err
		}
		if time.Since(lastSaid) > 10*time.Second {
			fmt.Fprintf(stderr, "waiting for workers of build %s (%v)\n", buildID, err)
			lastSaid = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func drainage(s sdkclient.WorkerDeploymentVersionDrainageStatus) string {
	switch s {
	case sdkclient.WorkerDeploymentVersionDrainageStatusDraining:
		return "draining"
	case sdkclient.WorkerDeploymentVersionDrainageStatusDrained:
		return "drained"
	default:
		return "-"
	}
}
