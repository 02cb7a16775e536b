package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/tis-writeback/writeback/internal/testenv"
)

// helmFails runs helm and returns its error output, failing the test if helm succeeded.
func helmFails(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(root(t), "bin", "helm"), args...)
	cmd.Dir = root(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.Error(t, cmd.Run(), "helm %v should have failed", args)
	return stderr.String()
}

func deployments(t *testing.T, extra ...string) map[string]*appsv1.Deployment {
	out := map[string]*appsv1.Deployment{}
	for _, d := range rendered(t, extra)["Deployment"] {
		dep := d.(*appsv1.Deployment)
		out[strings.TrimPrefix(dep.Name, "wb-")] = dep
	}
	require.Len(t, out, 2)
	return out
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	return env
}

// The pods' grace periods follow any Go duration: the worker's is its stop timeout plus 30 s, the
// starter's its drain timeout plus 20 s (the template once stripped an "s" and read "1m" as 0).
func TestChartGracePeriodsFollowDurations(t *testing.T) {
	for d, secs := range map[string]int64{"1m": 60, "90s": 90, "1h": 3600, "1m30s": 90, "2h45m": 9900, "1500ms": 2} {
		deps := deployments(t, "--set", "worker.stopTimeout="+d, "--set", "starter.drainTimeout="+d)
		require.Equal(t, secs+30, *deps["worker"].Spec.Template.Spec.TerminationGracePeriodSeconds, "worker, stopTimeout %s", d)
		require.Equal(t, secs+20, *deps["starter"].Spec.Template.Spec.TerminationGracePeriodSeconds, "starter, drainTimeout %s", d)
		cm := map[string]map[string]string{}
		for _, c := range rendered(t, []string{"--set", "worker.stopTimeout=" + d, "--set", "starter.drainTimeout=" + d})["ConfigMap"] {
			m := c.(*corev1.ConfigMap)
			cm[m.Name] = m.Data
		}
		require.Equal(t, d, cm["wb-worker"]["STOP_TIMEOUT"])
		require.Equal(t, d, cm["wb-starter"]["DRAIN_TIMEOUT"])
	}
}

// The schema refuses what the programs would refuse (or silently misread), naming the value.
func TestChartSchemaRefusesBadValues(t *testing.T) {
	for _, c := range []struct{ set, names string }{
		{"worker.stopTimeout=1 minute", "/worker/stopTimeout"},
		{"starter.drainTimeout=20", "/starter/drainTimeout"},
		{"retry.budget=1d", "/retry/budget"},
		{"worker.stopTimout=1m", "stopTimout"}, // a typo is not ignored
		{"logLevel=verbose", "/logLevel"},
		{"worker.replicas=-1", "/worker/replicas"},
		{"tcs.rate=0", "/tcs/rate"},
		{"tcs.url=tcs.example.org", "/tcs/url"},
		{"networkPolicy.egress.tcs.ports[0]=70000", "/networkPolicy/egress/tcs/ports/0"},
		{"image.pullPolicy=Sometimes", "/image/pullPolicy"},
	} {
		out := helmFails(t, "template", "wb", chart, "--set", c.set)
		require.Contains(t, out, "values don't meet the specifications of the schema", c.set)
		require.Contains(t, out, c.names, "%s: the error names the value:\n%s", c.set, out)
	}
}

// settingsOf lists the environment variables a program reads, from its --help ("(env NAME)").
func settingsOf(t *testing.T, bin string, args ...string) []string {
	out, _ := exec.Command(bin, append(args, "--help")...).CombinedOutput()
	var names []string
	for _, m := range regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`).FindAllStringSubmatch(string(out), -1) {
		names = append(names, m[1])
	}
	require.NotEmpty(t, names, "%s %v --help lists no settings:\n%s", bin, args, out)
	sort.Strings(names)
	return names
}

// Every setting the worker and `starter consume` read is reachable from the chart's values: set by
// the chart (its ConfigMaps and env) when every option is on. A new setting without a value fails here.
func TestChartReachesEverySetting(t *testing.T) {
	dir := t.TempDir()
	objs := rendered(t, valueSets["everything"])
	reach := map[string]map[string]bool{"worker": {}, "starter": {}}
	for _, c := range objs["ConfigMap"] {
		cm := c.(*corev1.ConfigMap)
		for comp := range reach {
			if cm.Name == "wb-"+comp {
				for k := range cm.Data {
					reach[comp][k] = true
				}
			}
		}
	}
	for _, d := range objs["Deployment"] {
		dep := d.(*appsv1.Deployment)
		for name := range envOf(dep.Spec.Template.Spec.Containers[0]) {
			reach[strings.TrimPrefix(dep.Name, "wb-")][name] = true
		}
	}
	// The chart gives the token as a file (re-read on rotation), never as a value.
	alternatives := map[string]string{"TCS_TOKEN": "TCS_TOKEN_FILE"}
	for comp, args := range map[string][]string{"worker": nil, "starter": {"consume"}} {
		bin := testenv.Build(t, "./"+comp, dir)
		for _, name := range settingsOf(t, bin, args...) {
			if alt, ok := alternatives[name]; ok {
				name = alt
			}
			require.True(t, reach[comp][name], "%s reads %s, but no chart value sets it", comp, name)
		}
	}
}

// Each component runs under a ServiceAccount of its own and no pod mounts an API token.
func TestChartServiceAccountsWithoutTokens(t *testing.T) {
	objs := rendered(t, nil)
	sas := map[string]bool{}
	for _, s := range objs["ServiceAccount"] {
		sa := s.(*corev1.ServiceAccount)
		require.NotNil(t, sa.AutomountServiceAccountToken)
		require.False(t, *sa.AutomountServiceAccountToken, sa.Name)
		sas[sa.Name] = true
	}
	require.Equal(t, map[string]bool{"wb-worker": true, "wb-starter": true}, sas)
	pods := map[string]corev1.PodSpec{}
	for _, d := range objs["Deployment"] {
		dep := d.(*appsv1.Deployment)
		pods[dep.Name] = dep.Spec.Template.Spec
	}
	for _, j := range objs["Job"] {
		job := j.(*batchv1.Job)
		pods[job.Name] = job.Spec.Template.Spec
	}
	for name, pod := range pods {
		require.NotNil(t, pod.AutomountServiceAccountToken, name)
		require.False(t, *pod.AutomountServiceAccountToken, "%s mounts an API token", name)
		require.NotEmpty(t, pod.ServiceAccountName, name)
		require.NotEqual(t, "default", pod.ServiceAccountName, name)
	}
	require.Equal(t, "wb-worker", pods["wb-worker"].ServiceAccountName)
	require.Equal(t, "wb-starter", pods["wb-starter"].ServiceAccountName)

	// An existing account instead of the chart's: none rendered, the pod runs under it.
	objs = rendered(t, []string{"--set", "starter.serviceAccount.create=false", "--set", "starter.serviceAccount.name=ops-starter"})
	require.Len(t, objs["ServiceAccount"], 1)
	for _, d := range objs["Deployment"] {
		if dep := d.(*appsv1.Deployment); dep.Name == "wb-starter" {
			require.Equal(t, "ops-starter", dep.Spec.Template.Spec.ServiceAccountName)
		}
	}
}

// With a client certificate in the AMQP TLS Secret, the starter presents it: the files are mounted
// and named to the starter.
func TestChartAMQPClientCertificate(t *testing.T) {
	deps := deployments(t, "--set", "rabbitmq.tls.enabled=true", "--set", "rabbitmq.tls.secretName=amqp-tls",
		"--set", "rabbitmq.tls.clientCertificate=true")
	pod := deps["starter"].Spec.Template.Spec
	env := envOf(pod.Containers[0])
	require.Equal(t, "/etc/amqp-tls/ca.crt", env["AMQP_CA_FILE"].Value)
	require.Equal(t, "/etc/amqp-tls/tls.crt", env["AMQP_CERT_FILE"].Value)
	require.Equal(t, "/etc/amqp-tls/tls.key", env["AMQP_KEY_FILE"].Value)
	require.Equal(t, "/etc/amqp-tls", pod.Containers[0].VolumeMounts[0].MountPath)
	require.Equal(t, "amqp-tls", pod.Volumes[0].Secret.SecretName)

	// A CA alone: the starter verifies the broker and presents no certificate.
	env = envOf(deployments(t, "--set", "rabbitmq.tls.enabled=true", "--set", "rabbitmq.tls.secretName=amqp-tls")["starter"].Spec.Template.Spec.Containers[0])
	require.Contains(t, env, "AMQP_CA_FILE")
	require.NotContains(t, env, "AMQP_CERT_FILE")
	require.NotContains(t, env, "AMQP_KEY_FILE")
}

// extraEnv, extraEnvFrom, pull secrets and scheduling reach the pods; extraEnv comes last, so it wins.
func TestChartExtraEnvAndScheduling(t *testing.T) {
	deps := deployments(t, valueSets["everything"]...)
	w := deps["worker"].Spec.Template.Spec
	require.Equal(t, "regcred", w.ImagePullSecrets[0].Name)
	require.Equal(t, "linux", w.NodeSelector["kubernetes.io/os"])
	require.Equal(t, "dedicated", w.Tolerations[0].Key)
	require.NotNil(t, w.Affinity.PodAntiAffinity)
	c := w.Containers[0]
	require.Equal(t, "GODEBUG", c.Env[len(c.Env)-1].Name)
	require.Equal(t, "worker-extra", c.EnvFrom[len(c.EnvFrom)-1].SecretRef.Name)
	require.Equal(t, "tis", deps["worker"].Spec.Template.Annotations["example.org/team"])
	s := deps["starter"].Spec.Template.Spec
	require.Equal(t, "regcred", s.ImagePullSecrets[0].Name)
	require.Equal(t, "existing-starter", s.ServiceAccountName)
	require.Equal(t, "TZ", s.Containers[0].Env[len(s.Containers[0].Env)-1].Name)
	require.Equal(t, "starter-extra", s.Containers[0].EnvFrom[len(s.Containers[0].EnvFrom)-1].ConfigMapRef.Name)
}

// The NetworkPolicy lets in only scrapes of the metrics ports and lets out only Temporal, RabbitMQ,
// TCS and DNS, on their ports.
func TestChartNetworkPolicy(t *testing.T) {
	require.Empty(t, rendered(t, nil)["NetworkPolicy"], "off by default: it needs a CNI that enforces it")
	nps := rendered(t, valueSets["everything"])["NetworkPolicy"]
	require.Len(t, nps, 1)
	np := nps[0].(*networkingv1.NetworkPolicy)
	require.ElementsMatch(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, np.Spec.PolicyTypes)
	require.Equal(t, "wb", np.Spec.PodSelector.MatchLabels["app.kubernetes.io/instance"])
	require.Len(t, np.Spec.Ingress, 1)
	var in []int32
	for _, p := range np.Spec.Ingress[0].Ports {
		in = append(in, p.Port.IntVal)
	}
	require.ElementsMatch(t, []int32{9464, 9465}, in)
	require.Equal(t, "monitoring", np.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
	var out []string
	for _, r := range np.Spec.Egress {
		require.NotEmpty(t, r.To, "every destination is narrowed to its peers in these values")
		for _, p := range r.Ports {
			out = append(out, string(*p.Protocol)+"/"+p.Port.String())
		}
	}
	require.ElementsMatch(t, []string{"TCP/7233", "TCP/5671", "TCP/443", "UDP/53", "TCP/53"}, out)
}

// The alert rules of one release look at that release's series only: two releases under one
// Prometheus neither mask (absent) nor double (sum) each other. Each links a runbook that exists.
func TestChartAlertsScopedPerRelease(t *testing.T) {
	objs := rendered(t, append([]string{"--namespace", "ops"}, valueSets["production"]...))
	rule := objs["PrometheusRule"][0].(*prometheusRule)
	selector := regexp.MustCompile(`\b(writeback|temporal)_[a-z_]+(\{[^}]*\})?`)
	for _, r := range rule.Spec.Groups[0].Rules {
		for _, m := range selector.FindAllString(r.Expr, -1) {
			require.Contains(t, m, `namespace="ops",job=~"wb-(worker|starter)"`, "alert %s: %s is not scoped to the release", r.Alert, m)
		}
	}

	ops, err := os.ReadFile(filepath.Join(root(t), "docs", "operating.md"))
	require.NoError(t, err)
	anchors := map[string]bool{}
	for _, h := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(ops), -1) {
		anchors[githubAnchor(h[1])] = true
	}
	const base = "https://github.com/tis-writeback/writeback/blob/main/docs/operating.md#"
	for _, r := range rule.Spec.Groups[0].Rules {
		url := r.Annotations["runbook_url"]
		require.True(t, strings.HasPrefix(url, base), "alert %s: runbook_url %q", r.Alert, url)
		require.True(t, anchors[strings.TrimPrefix(url, base)], "alert %s: docs/operating.md has no section #%s", r.Alert, strings.TrimPrefix(url, base))
	}
	// An operator's own copy of the guide.
	rule = rendered(t, valueSets["everything"])["PrometheusRule"][0].(*prometheusRule)
	require.True(t, strings.HasPrefix(rule.Spec.Groups[0].Rules[0].Annotations["runbook_url"], "https://wiki.example.org/writeback/operating#"))
}

// githubAnchor is the fragment GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// A rollout (versioning.strategy rollout with the previous build named): each build's workers run in a
// Deployment of their own with the build's image, selector and build ID, side by side; the rollout Job
// replaces the set-current hook, and its ServiceAccount (the only one with an API token) may scale
// those two Deployments and nothing else.
func TestChartRollout(t *testing.T) {
	objs := rendered(t, valueSets["rollout"])
	workers := map[string]*appsv1.Deployment{}
	for _, d := range objs["Deployment"] {
		if dep := d.(*appsv1.Deployment); dep.Labels["app.kubernetes.io/component"] == "worker" {
			workers[dep.Name] = dep
		}
	}
	require.Len(t, workers, 2)
	for name, build := range map[string]string{"wb-worker-dev2": "dev2", "wb-worker-dev": "dev"} {
		dep := workers[name]
		require.NotNil(t, dep, name)
		c := dep.Spec.Template.Spec.Containers[0]
		require.Equal(t, "writeback-local/writeback-worker:"+build, c.Image, name)
		require.Equal(t, build, envOf(c)["TEMPORAL_BUILD_ID"].Value, name)
		require.Equal(t, build, dep.Spec.Selector.MatchLabels["writeback.tis/build"], "%s: selectors of the two builds must not overlap", name)
		require.Equal(t, build, dep.Spec.Template.Labels["writeback.tis/build"], name)
	}
	pdbs := map[string]string{}
	for _, p := range objs["PodDisruptionBudget"] {
		pdb := p.(*policyv1.PodDisruptionBudget)
		pdbs[pdb.Name] = pdb.Spec.Selector.MatchLabels["writeback.tis/build"]
	}
	require.Equal(t, map[string]string{"wb-worker-dev2": "dev2", "wb-worker-dev": "dev"}, pdbs,
		"one per build: a drain must not take every worker of one build while the other's keep the count")
	hpas := map[string]bool{}
	for _, h := range objs["HorizontalPodAutoscaler"] {
		hpas[h.(*autoscalingv2.HorizontalPodAutoscaler).Spec.ScaleTargetRef.Name] = true
	}
	require.Equal(t, map[string]bool{"wb-worker-dev2": true, "wb-worker-dev": true}, hpas)

	jobs := map[string]*batchv1.Job{}
	for _, j := range objs["Job"] {
		jobs[j.(*batchv1.Job).Name] = j.(*batchv1.Job)
	}
	require.Len(t, jobs, 2, "the rollout Job and its check, not the set-current hook")
	// Before an upgrade or a rollback to this revision, one of its builds must be current.
	check := jobs["wb-rollout-check"]
	require.NotNil(t, check)
	require.Equal(t, "pre-upgrade,pre-rollback", check.Annotations["helm.sh/hook"])
	require.Equal(t, []string{"versioning", "status", "--require-current", "dev,dev2"}, check.Spec.Template.Spec.Containers[0].Args)
	require.False(t, *check.Spec.Template.Spec.AutomountServiceAccountToken)
	job := jobs["wb-rollout-1"]
	require.NotNil(t, job)
	require.Equal(t, int64(4*60+2*3*300+3600), *job.Spec.ActiveDeadlineSeconds, "the wait for workers, each step three times, an hour")
	pod := job.Spec.Template.Spec
	require.Equal(t, "wb-rollout", pod.ServiceAccountName)
	require.True(t, *pod.AutomountServiceAccountToken)
	args := strings.Join(pod.Containers[0].Args, " ")
	for _, want := range []string{"versioning rollout --build-id dev2", "--steps 10,50 --step 5m", "--build-workers wb-worker-dev2",
		"--previous-build-id dev --previous-workers wb-worker-dev"} {
		require.Contains(t, args, want)
	}
	require.Equal(t, "writeback", envOf(pod.Containers[0])["TEMPORAL_DEPLOYMENT_NAME"].Value)
	require.Len(t, objs["Role"], 1)
	rules := objs["Role"][0].(*rbacv1.Role).Rules
	require.Len(t, rules, 1)
	require.Equal(t, []string{"deployments/scale"}, rules[0].Resources)
	require.ElementsMatch(t, []string{"wb-worker-dev2", "wb-worker-dev"}, rules[0].ResourceNames)
	require.ElementsMatch(t, []string{"get", "patch"}, rules[0].Verbs)
	rb := objs["RoleBinding"][0].(*rbacv1.RoleBinding)
	require.Equal(t, "wb-rollout", rb.Subjects[0].Name)
	var apiPorts []int32
	for _, n := range objs["NetworkPolicy"] {
		if np := n.(*networkingv1.NetworkPolicy); np.Name == "wb-rollout" {
			require.Equal(t, "rollout", np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"])
			for _, p := range np.Spec.Egress[0].Ports {
				apiPorts = append(apiPorts, p.Port.IntVal)
			}
		}
	}
	require.ElementsMatch(t, []int32{443, 6443}, apiPorts, "the rollout Job reaches the Kubernetes API")

	// No previous build (a first install), or the same build again: one Deployment and the hook.
	for _, extra := range [][]string{{"--set", "worker.versioning.rollout.previousBuildId="}, {"--set", "worker.versioning.rollout.previousBuildId=dev2"}} {
		objs := rendered(t, append(append([]string(nil), valueSets["rollout"]...), extra...))
		names := []string{}
		for _, d := range objs["Deployment"] {
			names = append(names, d.(*appsv1.Deployment).Name)
		}
		require.ElementsMatch(t, []string{"wb-worker", "wb-starter"}, names, extra)
		require.Equal(t, "wb-set-current-version", objs["Job"][0].(*batchv1.Job).Name, extra)
		require.Empty(t, objs["Role"], extra)
	}
	require.Contains(t, helmFails(t, append(append([]string{"template", "wb", chart}, valueSets["rollout"]...),
		"--set", "worker.versioning.rollout.steps={50,10}")...), "steps")
	require.Contains(t, helmFails(t, append(append([]string{"template", "wb", chart}, valueSets["rollout"]...),
		"--set", "worker.versioning.buildId=1.4.3+G1")...), `build "1.4.3+G1": with strategy rollout a build ID names a Deployment`)
	// Values of an older chart (no rollout.steps or step): the defaults.
	objs = rendered(t, []string{"-f", "deploy/local/kube/values-local.yaml", "--set", "worker.versioning.buildId=dev2",
		"--set", "worker.versioning.strategy=rollout", "--set", "worker.versioning.rollout.previousBuildId=dev",
		"--set", "worker.versioning.rollout.steps=null", "--set", "worker.versioning.rollout.step=null"})
	found := false
	for _, j := range objs["Job"] {
		if j := j.(*batchv1.Job); j.Name == "wb-rollout-1" {
			found = true
			require.Contains(t, strings.Join(j.Spec.Template.Spec.Containers[0].Args, " "), "--steps 10,50 --step 5m")
		}
	}
	require.True(t, found, "the rollout Job with the default steps")
}
