package chaos

// The kube profile (make test-deploy): the chaos run through the Helm release that make deploy-up
// installed on the local Kubernetes. The run publishes to the RabbitMQ pod and reads Temporal and the
// TCS simulator through their Services' fixed ClusterIPs (deploy/local/kube/manifests/deps.yaml), so
// it runs inside the cluster's network namespace. Its faults are the ones a deployment meets: a worker
// pod and the starter pod deleted (SIGTERM from the kubelet, drain within the grace period), RabbitMQ's
// container killed and restarted by the kubelet on its node (the pod's disk kept), and the workers
// rolled to a new build by `helm upgrade` under Worker Versioning.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/bench/stack"
	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/demo"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// ProfileKube is the Helm release on the local Kubernetes of make deploy-up.
const ProfileKube = "kube"

// The dependencies' fixed ClusterIPs (deploy/local/kube/manifests/deps.yaml).
const (
	kubeAMQPURL  = "amqp://guest:guest@10.216.0.20:5672/"
	kubeTemporal = "10.216.0.21:7233"
	kubeTCS      = "10.216.0.22:8081"
	kubeTCSAdmin = "10.216.0.22:8082"
)

// KubeConfig says where the release runs and what it is rolled to.
type KubeConfig struct {
	Kubeconfig string // the admin kubeconfig make deploy-up printed; its directory holds the pod logs
	Namespace  string // the release's namespace
	Release    string
	Chart      string // the chart the release is upgraded with
	Values     string // the values file it was installed with
	RollTo     string // image tag and build ID the workers are rolled to mid-stream
	Containerd string // the node's containerd socket: RabbitMQ's container is killed through it
	Deployment string // the Worker Versioning deployment name the release's workers use
}

type kube struct {
	cfg   KubeConfig
	root  string
	local *stack.Stack // the binaries, and the pre-fix consumer's simulator
	logs  *podLogs
	ctx   context.Context // ends with Close: the watchers' kubectl calls
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu       sync.Mutex
	notReady map[string]time.Duration // per Service: how long a pod that had been ready was out of it, not terminating
	outSince map[string]time.Time     // per pod: out of its Service since
	wasReady map[string]bool          // per pod: ready at some sample
	svcOf    map[string]string        // per pod: its Service
}

func startKube(ctx context.Context, c Config) (Target, error) {
	k := c.Kube
	if k.Kubeconfig == "" || k.Namespace == "" || k.Release == "" {
		return nil, fmt.Errorf("the kube profile needs the kubeconfig, namespace and release of make deploy-up")
	}
	if err := temporalclient.WaitHealthy(ctx, kubeTemporal, 30*time.Second); err != nil {
		return nil, fmt.Errorf("Temporal at %s (run inside the cluster's network namespace, after make deploy-up): %w", kubeTemporal, err)
	}
	local, err := stack.Bare(stack.Config{Dir: c.Dir, Root: c.Root, Placements: demo.SeededPlacements})
	if err != nil {
		return nil, err
	}
	t := &kube{cfg: k, root: c.Root, local: local, notReady: map[string]time.Duration{}, outSince: map[string]time.Time{},
		wasReady: map[string]bool{}, svcOf: map[string]string{},
		logs: &podLogs{src: filepath.Join(filepath.Dir(k.Kubeconfig), "pod-logs"), dst: filepath.Join(c.Dir, "pod-logs"), prefix: k.Namespace + "_"}}
	if err := os.MkdirAll(t.logs.dst, 0o755); err != nil {
		return nil, err
	}
	t.ctx, t.stop = context.WithCancel(context.Background())
	t.wg.Add(2)
	go func() { defer t.wg.Done(); t.logs.follow(t.ctx.Done()) }()
	go func() { defer t.wg.Done(); t.watchEndpoints() }()
	return t, nil
}

func (k *kube) Topology() broker.Topology      { return broker.DefaultTopology() } // the chart's defaults
func (k *kube) TCSAdmin() string               { return kubeTCSAdmin }
func (k *kube) Client() (client.Client, error) { return stack.DialTemporal(kubeTemporal) }
func (k *kube) StarterBin() string             { return k.local.StarterBin }
func (k *kube) Clustered() bool                { return true } // RabbitMQ restarts under the pre-fix consumer too
func (k *kube) StarterEnv() []string {
	return []string{"TEMPORAL_ADDRESS=" + kubeTemporal, "AMQP_URL=" + kubeAMQPURL, "TCS_URL=http://" + kubeTCS, "TCS_TOKEN=" + sim.DevToken}
}

// Broker: the chart's topology exists (the topology operator declared it); declaring it again checks
// its arguments. Cleanup deletes only what the run made for itself.
func (k *kube) Broker(name string, extraQueues, extraExchanges []string) (*broker.Conn, *broker.Publisher, func(), error) {
	return stack.ConnectBroker(kubeAMQPURL, k.Topology(), name, extraQueues, extraExchanges)
}

func (k *kube) StartSim(name string) (string, string, error) {
	_, addr, admin, err := k.local.StartSim(name)
	return addr, admin, err
}

func (k *kube) WorkerLogs() []string {
	k.logs.poll() // every line written so far
	return k.logs.files(regexp.MustCompile(`_` + regexp.QuoteMeta(k.cfg.Release) + `-worker-[^_]+_[^_]+_worker_`))
}

func (k *kube) Close() {
	k.stop()
	k.wg.Wait()
	k.local.Close()
}

func (k *kube) kubectl(ctx context.Context, args ...string) (string, error) {
	return k.run(ctx, 8*time.Minute, filepath.Join(k.root, "bin", "kube", "kubectl"), append([]string{"--kubeconfig", k.cfg.Kubeconfig, "-n", k.cfg.Namespace}, args...)...)
}

func (k *kube) run(ctx context.Context, within time.Duration, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Faults, one after the other (each once the one before has healed, so that each check reads one
// fault): a worker pod deleted, RabbitMQ's container killed, the workers rolled to a new build, the
// starter pod deleted.
func (k *kube) Faults(pl *plan) {
	pl.at(0.15, func() {
		k.deletePod(pl.ctx, pl, "worker")
		k.healed(pl.ctx)
		pl.wait(0.3)
		k.restartRabbit(pl.ctx, pl)
		k.healed(pl.ctx)
		if k.cfg.RollTo != "" {
			pl.wait(0.45)
			k.roll(pl.ctx, pl)
		}
		pl.wait(0.6)
		k.deletePod(pl.ctx, pl, "starter")
	})
}

// deletePod deletes one running pod of the component as an operator or a node drain does: the kubelet
// sends SIGTERM and kills at the grace period. The pod must be gone before then (it drained), and its
// log must say it stopped of its own accord.
func (k *kube) deletePod(ctx context.Context, pl *plan, component string) {
	pod, err := k.runningPod(ctx, k.cfg.Namespace, "app.kubernetes.io/component="+component)
	grace := pod.grace
	if err != nil {
		pl.problem("no running %s pod to delete: %v", component, err)
		return
	}
	from := pl.since()
	start := time.Now()
	pl.logf("deleting %s pod %s (grace period %d s)", component, pod.name, grace)
	if _, err := k.kubectl(ctx, "delete", "pod", pod.name, "--wait=true", "--timeout=5m"); err != nil {
		pl.problem("delete pod %s: %v", pod.name, err)
		return
	}
	took := time.Since(start)
	pl.window(component+" pod deleted", from)
	pl.counted(component + " pod deleted (SIGTERM)")
	k.logs.poll()
	stopped := k.logs.contains(pod.name, stopLine[component])
	var unclean []string
	for _, bad := range uncleanStop {
		if k.logs.contains(pod.name, bad) {
			unclean = append(unclean, bad)
		}
	}
	pl.note("%s pod %s deleted: gone %.1f s after the delete (terminationGracePeriodSeconds %d); its log ends its stop by itself: %v",
		component, pod.name, took.Seconds(), grace, stopped && len(unclean) == 0)
	if took >= time.Duration(grace)*time.Second || !stopped || len(unclean) > 0 {
		pl.problem("%s pod %s did not drain within its grace period (%.1f s of %d s; stop line %v; %q)",
			component, pod.name, took.Seconds(), grace, stopped, unclean)
	}
}

type pod struct {
	name, containerID string
	grace             int // terminationGracePeriodSeconds
}

// runningPod is a pod of the selector that runs, is ready and is not being deleted (a rollout may be
// replacing another one).
func (k *kube) runningPod(ctx context.Context, namespace, selector string) (pod, error) {
	out, err := k.kubectl(ctx, "-n", namespace, "get", "pods", "-l", selector, "-o", "json")
	if err != nil {
		return pod{}, err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Spec struct {
				Grace int `json:"terminationGracePeriodSeconds"`
			} `json:"spec"`
			Status struct {
				Phase      string `json:"phase"`
				Conditions []struct {
					Type, Status string
				} `json:"conditions"`
				ContainerStatuses []struct {
					ContainerID string `json:"containerID"`
				} `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return pod{}, err
	}
	for _, p := range list.Items {
		if p.Metadata.DeletionTimestamp != nil || p.Status.Phase != "Running" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" && len(p.Status.ContainerStatuses) > 0 {
				return pod{name: p.Metadata.Name, grace: p.Spec.Grace,
					containerID: strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")}, nil
			}
		}
	}
	return pod{}, fmt.Errorf("none of %d pods runs ready", len(list.Items))
}

// stopLine is what each component logs at the end of its stop: a process killed at the grace period
// never writes it.
var stopLine = map[string]string{
	"worker":  `"msg":"worker stopped"`,
	"starter": `"msg":"consumer stopped"`,
}

// uncleanStop are lines of a stop that did not drain.
var uncleanStop = []string{`"msg":"stop timeout reached before the work drained"`,
	`"msg":"consumer stopped with deliveries still held; the broker requeues them"`}

// restartRabbit kills RabbitMQ's container process on the node; the kubelet starts it again in the
// same pod, on the same disk (a node-local restart: the quorum queues recover from it).
func (k *kube) restartRabbit(ctx context.Context, pl *plan) {
	before, err := k.runningPod(ctx, "writeback-deps", "app=rabbitmq")
	if err != nil {
		pl.problem("no RabbitMQ container to kill: %v", err)
		return
	}
	from := pl.since()
	pl.logf("RabbitMQ container %.12s killed (SIGKILL) on the node", before.containerID)
	if _, err := k.run(ctx, time.Minute, "ctr", "--address", k.cfg.Containerd, "-n", "k8s.io", "task", "kill", "-s", "SIGKILL", before.containerID); err != nil {
		pl.problem("kill RabbitMQ's container: %v", err)
		return
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		after, err := k.runningPod(ctx, "writeback-deps", "app=rabbitmq")
		if err == nil && after.name == before.name && after.containerID != before.containerID {
			break // a new container, ready, in the same pod
		}
		if err == nil && after.name != before.name {
			pl.problem("RabbitMQ came back in another pod (%s), not restarted on its node", after.name)
			return
		}
		if time.Now().After(deadline) {
			pl.problem("RabbitMQ's container did not come back within 5 min")
			return
		}
	}
	pl.window("RabbitMQ restart", from)
	pl.counted("rabbitmq container (SIGKILL, restarted by the kubelet)")
	pl.note("RabbitMQ's container was killed on the node and a new one was ready %.0f s later, in the same pod on the same disk", (pl.since() - from).Seconds())
}

// healed waits until the release's Deployments and RabbitMQ are rolled out and ready.
func (k *kube) healed(ctx context.Context) {
	for _, d := range []string{"deploy/" + k.cfg.Release + "-worker", "deploy/" + k.cfg.Release + "-starter"} {
		_, _ = k.kubectl(ctx, "rollout", "status", d, "--timeout=5m")
	}
	_, _ = k.kubectl(ctx, "-n", "writeback-deps", "wait", "--for=condition=Ready", "pod", "-l", "app=rabbitmq", "--timeout=5m")
}

// roll upgrades the release to a new build under Worker Versioning: the Deployment rolls its pods
// (one new pod ready before an old one goes) and the chart's hook makes the build current.
func (k *kube) roll(ctx context.Context, pl *plan) {
	tag := k.cfg.RollTo
	from := pl.since()
	pl.logf("helm upgrade: workers rolled to build %s", tag)
	// --timeout bounds the rollout's wait and, again, the hook's: the command gets both and a margin
	_, err := k.run(ctx, 15*time.Minute, filepath.Join(k.root, "bin", "helm"), "--kubeconfig", k.cfg.Kubeconfig, "upgrade", k.cfg.Release, k.cfg.Chart,
		"-n", k.cfg.Namespace, "--reuse-values", "--set", "image.tag="+tag, "--set", "worker.versioning.buildId="+tag, "--wait", "--timeout", "5m")
	if err != nil {
		pl.problem("helm upgrade to %s: %v", tag, err)
		return
	}
	pl.window("rolling upgrade", from)
	pl.counted("workers rolled to a new build (helm upgrade)")
	cmd := exec.CommandContext(ctx, k.local.StarterBin, "versioning", "status", "--deployment-name", k.cfg.Deployment)
	cmd.Env = append(os.Environ(), k.StarterEnv()...)
	status, _ := cmd.CombinedOutput()
	first := strings.SplitN(strings.TrimSpace(string(status)), "\n", 2)[0]
	pl.note("helm upgrade to build %s (the hook set it current) returned after %.0f s: %s", tag, (pl.since() - from).Seconds(), first)
	if !strings.Contains(first, "current build "+tag) {
		pl.problem("after the upgrade the current build is not %s: %s", tag, status)
	}
}

// Heal waits until the release's Deployments and RabbitMQ are rolled out and ready again.
func (k *kube) Heal(ctx context.Context, pl *plan) {
	k.healed(ctx)
	pl.note("readiness: time a pod that had been ready was out of its Service (not terminating: its /readyz failed the kubelet's probe): %s", k.readinessNote())
}

// readinessNote: how long each Service had a running pod out of it because /readyz said no.
func (k *kube) readinessNote() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	notReady := map[string]time.Duration{}
	for n, d := range k.notReady {
		notReady[n] = d
	}
	for p, since := range k.outSince { // still out
		notReady[k.svcOf[p]] += time.Since(since)
	}
	var parts []string
	for n, d := range notReady {
		parts = append(parts, fmt.Sprintf("%s %.0f s", n, d.Seconds()))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "no running pod was ever out of its Service"
	}
	return strings.Join(parts, ", ")
}

// watchEndpoints samples the release's EndpointSlices: a pod that had been ready, runs and is not
// terminating, but is not ready (its /readyz failed the kubelet's probe), is out of its Service; the
// time is summed per Service. Pods still starting never count.
func (k *kube) watchEndpoints() {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-k.ctx.Done():
			return
		case <-t.C:
		}
		out, err := k.kubectl(k.ctx, "get", "endpointslices", "-o", "json")
		if err != nil {
			continue
		}
		var list struct {
			Items []struct {
				Metadata struct {
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
				Endpoints []struct {
					Conditions struct {
						Ready       *bool `json:"ready"`
						Terminating *bool `json:"terminating"`
					} `json:"conditions"`
					TargetRef struct {
						Name string `json:"name"`
					} `json:"targetRef"`
				} `json:"endpoints"`
			} `json:"items"`
		}
		if json.Unmarshal([]byte(out), &list) != nil {
			continue
		}
		now := time.Now()
		out1 := map[string]bool{} // pods out of their Service now
		k.mu.Lock()
		for _, it := range list.Items {
			svc := it.Metadata.Labels["kubernetes.io/service-name"]
			for _, e := range it.Endpoints {
				p, c := e.TargetRef.Name, e.Conditions
				if c.Ready != nil && *c.Ready {
					k.wasReady[p] = true
				} else if k.wasReady[p] && (c.Terminating == nil || !*c.Terminating) {
					out1[p] = true
					k.svcOf[p] = svc
				}
			}
		}
		for p := range out1 {
			if _, ok := k.outSince[p]; !ok {
				k.outSince[p] = now
			}
		}
		for p, since := range k.outSince {
			if !out1[p] {
				k.notReady[k.svcOf[p]] += now.Sub(since)
				delete(k.outSince, p)
			}
		}
		k.mu.Unlock()
	}
}

// podLogs copies the kubelet's container logs (CRI format, one directory per pod) into plain JSON-line
// files while the pods live: a deleted pod's directory goes with it, the open file stays readable.
type podLogs struct {
	src, dst, prefix string
	mu               sync.Mutex
	open             map[string]*followed // by path and inode (a rotated log is a new file at the same path)
}

type followed struct {
	in      *os.File
	out     *os.File
	rd      *bufio.Reader
	partial []byte
	name    string
}

func (l *podLogs) follow(stop <-chan struct{}) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		l.poll()
		select {
		case <-stop:
			l.mu.Lock()
			for _, f := range l.open {
				f.in.Close()
				f.out.Close()
			}
			l.open = nil
			l.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// poll opens the logs that appeared and copies what every followed log gained.
func (l *podLogs) poll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open == nil {
		l.open = map[string]*followed{}
	}
	paths, _ := filepath.Glob(filepath.Join(l.src, l.prefix+"*", "*", "*.log"))
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		key := fmt.Sprintf("%s#%d", p, st.Sys().(*syscall.Stat_t).Ino)
		if _, ok := l.open[key]; ok {
			continue
		}
		in, err := os.Open(p)
		if err != nil {
			continue
		}
		// the file opened may be newer than the one looked at (a rotation in between): its own key
		if st, err = in.Stat(); err != nil {
			in.Close()
			continue
		}
		if key = fmt.Sprintf("%s#%d", p, st.Sys().(*syscall.Stat_t).Ino); l.open[key] != nil {
			in.Close()
			continue
		}
		// <namespace>_<pod>_<uid>/<container>/<n>.log → <namespace>_<pod>_<uid>_<container>_<n>.log
		rel, _ := filepath.Rel(l.src, p)
		name := strings.ReplaceAll(rel, string(filepath.Separator), "_") + fmt.Sprintf(".%d", len(l.open))
		out, err := os.Create(filepath.Join(l.dst, name))
		if err != nil {
			in.Close()
			continue
		}
		l.open[key] = &followed{in: in, out: out, rd: bufio.NewReaderSize(in, 1<<16), name: out.Name()}
	}
	for _, f := range l.open {
		f.copy()
	}
}

// copy turns CRI lines ("<time> <stream> <P|F> <text>") into the text, joining partial lines.
func (f *followed) copy() {
	for {
		line, err := f.rd.ReadBytes('\n')
		if err != nil { // a line not yet complete: read it again next time
			if len(line) > 0 {
				_, _ = f.in.Seek(-int64(len(line))-int64(f.rd.Buffered()), 1)
				f.rd.Reset(f.in)
			}
			return
		}
		parts := bytes.SplitN(bytes.TrimRight(line, "\n"), []byte(" "), 4)
		if len(parts) < 4 {
			continue
		}
		f.partial = append(f.partial, parts[3]...)
		if string(parts[2]) == "P" {
			continue
		}
		_, _ = f.out.Write(append(f.partial, '\n'))
		f.partial = f.partial[:0]
	}
}

// files are the copies whose source matched re.
func (l *podLogs) files(re *regexp.Regexp) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, f := range l.open {
		if re.MatchString(filepath.Base(f.name)) {
			out = append(out, f.name)
		}
	}
	sort.Strings(out)
	return out
}

// contains reports whether the copied log of pod holds s.
func (l *podLogs) contains(pod, s string) bool {
	for _, name := range l.files(regexp.MustCompile(`_` + regexp.QuoteMeta(pod) + `_`)) {
		if b, err := os.ReadFile(name); err == nil && bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}
