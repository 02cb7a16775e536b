// Package deploy_test checks the deployment files offline: docker-compose.yml with compose-go, the
// Helm chart with helm lint/template and strict decoding into Kubernetes types, the RabbitMQ
// topology everywhere it is written down, and that every metric an alert or a panel uses exists.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/testenv"
)

func root(t *testing.T) string { return testenv.RepoRoot(t) }

// composeServices are the services the README's deploy section names.
var composeServices = []string{"postgresql", "temporal", "temporal-setup", "temporal-ui", "rabbitmq", "tcssim", "worker",
	"starter", "prometheus", "grafana"}

func TestComposeFileValidates(t *testing.T) {
	dir := root(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")}, cli.WithWorkingDirectory(dir), cli.WithName("writeback"))
	require.NoError(t, err)
	project, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "compose-go rejects docker-compose.yml")

	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	require.NoError(t, err)
	names := map[string]bool{}
	for name, svc := range project.Services {
		names[name] = true
		require.True(t, strings.Contains(string(readme), "`"+name+"`"), "README's deploy section should name service %s", name)
		reason, _ := svc.Extensions["x-no-healthcheck-reason"].(string)
		require.True(t, svc.HealthCheck != nil || reason != "", "service %s has neither a healthcheck nor a reason not to", name)
		for _, v := range svc.Volumes {
			if v.Type == "bind" {
				_, err := os.Stat(v.Source)
				require.NoError(t, err, "service %s mounts a missing file", name)
			}
		}
		for _, port := range svc.Ports {
			// The admin surfaces have no real authentication: loopback only, unless PUBLISH_ADDRESS says.
			require.Equal(t, "127.0.0.1", port.HostIP, "service %s publishes port %s beyond loopback", name, port.Published)
		}
		if svc.Build != nil {
			_, err := os.Stat(filepath.Join(svc.Build.Context, svc.Build.Dockerfile))
			require.NoError(t, err)
			require.Contains(t, dockerfileTargets(t), svc.Build.Target, "service %s builds a target the Dockerfile lacks", name)
		}
	}
	for _, want := range composeServices {
		require.True(t, names[want], "docker-compose.yml lacks service %s", want)
	}
	// Start order: the worker and starter wait for the search attributes; the starter for RabbitMQ.
	require.Equal(t, "service_completed_successfully", project.Services["worker"].DependsOn["temporal-setup"].Condition)
	require.Equal(t, "service_healthy", project.Services["starter"].DependsOn["rabbitmq"].Condition)
}

func dockerfileTargets(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "Dockerfile"))
	require.NoError(t, err)
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^FROM \S+ AS (\S+)`).FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	require.Subset(t, out, []string{"worker", "starter", "tcssim"})
	// Numeric, so that it holds on any base image (scratch has no /etc/passwd); 65532 is distroless's nonroot.
	require.Equal(t, 3, strings.Count(string(b), "\nUSER 65532:65532\n"), "each of the three images runs as non-root")
	// A `# syntax=` line makes BuildKit pull its frontend from a registry: the build must work without one.
	require.NotRegexp(t, `(?m)^# *syntax=`, string(b))
	require.Contains(t, string(b), "FROM ${GO_IMAGE:-golang:1.26-bookworm} AS build", "the Go image is a build argument")
	require.Contains(t, string(b), "CGO_ENABLED=0", "static binaries")
	return out
}

func helm(t *testing.T, args ...string) string {
	bin := filepath.Join(root(t), "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm is missing at %s: run `make bin/helm`", bin)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = root(t)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	require.NoError(t, cmd.Run(), "helm %v\n%s\n%s", args, out.String(), stderr.String())
	return out.String()
}

const chart = "deploy/helm/writeback"

// valueSets are the chart's default values and every values file in the repository; each must lint,
// pass the schema and render manifests that decode strictly.
var valueSets = map[string][]string{
	"default":    nil,
	"production": {"-f", chart + "/values-production.yaml"},
	"local":      {"-f", "deploy/local/kube/values-local.yaml", "--set", "worker.versioning.buildId=dev"}, // the build ID as deploy.sh gives it
	"everything": {"-f", "deploy/testdata/values-everything.yaml"},
	// a rollout of build dev2 replacing dev, as make test-deploy runs it
	"rollout": {"-f", "deploy/local/kube/values-local.yaml", "--set", "image.tag=dev2", "--set", "worker.versioning.buildId=dev2",
		"--set", "worker.versioning.strategy=rollout", "--set", "worker.versioning.rollout.previousBuildId=dev"},
}

func TestHelmLint(t *testing.T) {
	for name, extra := range valueSets {
		t.Run(name, func(t *testing.T) {
			out := helm(t, append([]string{"lint", "--strict", chart}, extra...)...)
			require.Contains(t, out, "0 chart(s) failed")
		})
	}
}

// rendered decodes every manifest strictly: an unknown field or a wrong type fails.
func rendered(t *testing.T, extra []string) map[string][]any {
	out := helm(t, append([]string{"template", "wb", chart}, extra...)...)
	byKind := map[string][]any{}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(out, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &head))
		// kubeconform -strict refuses a null where the schema wants a list or an object (volumes: null).
		require.NotRegexp(t, `(?m):\s*null\s*$`, stripComments(doc), "%s renders a null", head.Kind)
		var obj any
		switch head.APIVersion + "/" + head.Kind {
		case "apps/v1/Deployment":
			obj = &appsv1.Deployment{}
		case "v1/Service":
			obj = &corev1.Service{}
		case "v1/ConfigMap":
			obj = &corev1.ConfigMap{}
		case "policy/v1/PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "autoscaling/v2/HorizontalPodAutoscaler":
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		case "monitoring.coreos.com/v1/ServiceMonitor":
			obj = &serviceMonitor{}
		case "monitoring.coreos.com/v1/PrometheusRule":
			obj = &prometheusRule{}
		case "rabbitmq.com/v1beta1/Exchange":
			obj = &rmqExchange{}
		case "rabbitmq.com/v1beta1/Queue":
			obj = &rmqQueue{}
		case "rabbitmq.com/v1beta1/Binding":
			obj = &rmqBinding{}
		case "rabbitmq.com/v1beta1/Policy":
			obj = &rmqPolicy{}
		case "rabbitmq.com/v1beta1/RabbitmqCluster":
			obj = &rmqCluster{}
		case "batch/v1/Job":
			obj = &batchv1.Job{}
		case "v1/ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "v1/Pod":
			obj = &corev1.Pod{}
		case "networking.k8s.io/v1/NetworkPolicy":
			obj = &networkingv1.NetworkPolicy{}
		case "rbac.authorization.k8s.io/v1/Role":
			obj = &rbacv1.Role{}
		case "rbac.authorization.k8s.io/v1/RoleBinding":
			obj = &rbacv1.RoleBinding{}
		default:
			t.Fatalf("unexpected manifest %s %s", head.APIVersion, head.Kind)
		}
		require.NoError(t, yaml.UnmarshalStrict([]byte(doc), obj), "%s does not decode strictly:\n%s", head.Kind, doc)
		byKind[head.Kind] = append(byKind[head.Kind], obj)
	}
	return byKind
}

func stripComments(doc string) string {
	var keep []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func TestHelmTemplateDecodesStrictly(t *testing.T) {
	for name, extra := range valueSets {
		t.Run(name, func(t *testing.T) { rendered(t, extra) })
	}
	def := rendered(t, valueSets["default"])
	require.Len(t, def["Deployment"], 2)
	require.Len(t, def["PodDisruptionBudget"], 1, "the worker's; a single starter has none (minAvailable 0 protects nothing)")
	require.Empty(t, def["Queue"], "topology CRs only behind rabbitmqTopology.enabled")
	// Without Worker Versioning the hook makes unversioned workers current (versioning turned off).
	require.Len(t, def["Job"], 1)
	offHook := def["Job"][0].(*batchv1.Job).Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"versioning", "set-current", "--unversioned"}, offHook.Args[:3])
	for _, e := range offHook.Env {
		require.NotEqual(t, "TEMPORAL_BUILD_ID", e.Name)
	}

	prod := rendered(t, valueSets["production"])
	for _, kind := range []string{"HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule", "Exchange", "Queue", "Binding", "Policy"} {
		require.NotEmpty(t, prod[kind], "production values render a %s", kind)
	}
	for _, d := range prod["Deployment"] {
		dep := d.(*appsv1.Deployment)
		pod := dep.Spec.Template.Spec
		c := pod.Containers[0]
		require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
		require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
		require.NotNil(t, c.Resources.Requests.Cpu())
		require.True(t, *pod.SecurityContext.RunAsNonRoot)
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
		}
		require.Contains(t, env, "TEMPORAL_TLS_CERT", "mTLS to Temporal in production")
		if strings.HasSuffix(dep.Name, "-worker") {
			// SIGTERM lets running activities finish within STOP_TIMEOUT (30 s): the pod must live longer.
			require.Greater(t, *pod.TerminationGracePeriodSeconds, int64(30))
			require.Equal(t, "writeback", env["TEMPORAL_DEPLOYMENT_NAME"].Value)
			require.Equal(t, "1.4.2", env["TEMPORAL_BUILD_ID"].Value)
			require.Equal(t, "/etc/tcs-token/token", env["TCS_TOKEN_FILE"].Value, "TCS token from a Secret")
		} else {
			require.Equal(t, "writeback-amqp", env["AMQP_URL"].ValueFrom.SecretKeyRef.Name)
			require.Contains(t, env, "AMQP_CA_FILE", "AMQPS in production")
		}
	}
	// Worker Versioning: a hook makes the release's build current after install, upgrade and rollback,
	// with the workers' Temporal settings (the same TLS), or a rolling update leaves no worker that gets records.
	require.Len(t, prod["Job"], 1)
	job := prod["Job"][0].(*batchv1.Job)
	require.Equal(t, "post-install,post-upgrade,post-rollback", job.Annotations["helm.sh/hook"])
	hook := job.Spec.Template.Spec.Containers[0]
	require.True(t, strings.HasSuffix(hook.Image, "writeback-starter:1.4.2"), hook.Image)
	require.Equal(t, []string{"versioning", "set-current"}, hook.Args[:2])
	hookEnv := map[string]string{}
	for _, e := range hook.Env {
		hookEnv[e.Name] = e.Value
	}
	require.Equal(t, "writeback", hookEnv["TEMPORAL_DEPLOYMENT_NAME"])
	require.Equal(t, "1.4.2", hookEnv["TEMPORAL_BUILD_ID"])
	require.Equal(t, "/etc/temporal-tls/tls.crt", hookEnv["TEMPORAL_TLS_CERT"])
	require.Equal(t, []string{"--wait", "4m"}, hook.Args[2:4], "within helm's default --timeout of 5m")
	require.Equal(t, int64(300), *job.Spec.ActiveDeadlineSeconds, "the Job outlives its own wait")

	rule := prod["PrometheusRule"][0].(*prometheusRule)
	require.NotEmpty(t, rule.Spec.Groups[0].Rules)
	for _, r := range rule.Spec.Groups[0].Rules {
		require.NotEmpty(t, r.Annotations["runbook_url"], "alert %s has a runbook_url", r.Alert)
		require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"])
	}
}

// TestTopologyAgreesEverywhere: the starter's own declaration, the compose definitions and the
// Helm CRs name the same exchanges and queues, all quorum, with the same delivery limit and DLX.
func TestTopologyAgreesEverywhere(t *testing.T) {
	want := broker.DefaultTopology()

	var defs struct {
		Exchanges []struct{ Name, Type string } `json:"exchanges"`
		Queues    []struct {
			Name      string         `json:"name"`
			Arguments map[string]any `json:"arguments"`
		} `json:"queues"`
		Bindings []struct {
			Source, Destination string
			RoutingKey          string `json:"routing_key"`
		} `json:"bindings"`
		Policies []struct {
			Pattern    string         `json:"pattern"`
			Definition map[string]any `json:"definition"`
		} `json:"policies"`
	}
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "rabbitmq", "definitions.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &defs))
	exchanges := map[string]string{}
	for _, e := range defs.Exchanges {
		exchanges[e.Name] = e.Type
	}
	require.Equal(t, map[string]string{want.Exchange: "topic", want.DLX: "fanout"}, exchanges)
	queues := map[string]map[string]any{}
	for _, q := range defs.Queues {
		queues[q.Name] = q.Arguments
	}
	starterArgs := want.QueueArgs()
	for _, src := range want.Sources() {
		args := queues[src.Queue]
		require.NotNil(t, args, "compose definitions lack %s", src.Queue)
		// Every argument the starter declares, the same: a queue preloaded otherwise would refuse
		// the starter's declaration, and broker dead-lettering must never drop a message.
		require.Len(t, args, len(starterArgs), "compose %s arguments", src.Queue)
		for k, v := range starterArgs {
			require.EqualValues(t, v, args[k], "compose %s argument %s", src.Queue, k)
		}
		found := false
		for _, bnd := range defs.Bindings {
			found = found || (bnd.Source == want.Exchange && bnd.Destination == src.Queue && bnd.RoutingKey == src.RoutingKey)
		}
		require.True(t, found, "compose binding for %s", src.Queue)
		require.Regexp(t, defs.Policies[0].Pattern, src.Queue, "the policy covers %s", src.Queue)
	}
	require.Equal(t, "quorum", queues[want.DLQ]["x-queue-type"])
	require.EqualValues(t, want.DeliveryLimit, defs.Policies[0].Definition["delivery-limit"])
	require.Equal(t, want.DLX, defs.Policies[0].Definition["dead-letter-exchange"])
	require.Equal(t, "at-least-once", defs.Policies[0].Definition["dead-letter-strategy"])
	require.Equal(t, "reject-publish", defs.Policies[0].Definition["overflow"])
	conf, err := os.ReadFile(filepath.Join(root(t), "deploy", "rabbitmq", "rabbitmq.conf"))
	require.NoError(t, err)
	// A Temporal outage holds deliveries: 24 h × the delivery limit of 20 rides out 20 days.
	require.Contains(t, string(conf), "consumer_timeout = 86400000")
	require.Contains(t, string(conf), "max_message_size = 1048576")

	prod := rendered(t, valueSets["production"])
	crQueues := map[string]*rmqQueue{}
	for _, q := range prod["Queue"] {
		crQueues[q.(*rmqQueue).Spec.Name] = q.(*rmqQueue)
	}
	for _, src := range want.Sources() {
		q := crQueues[src.Queue]
		require.NotNil(t, q, "Helm lacks Queue %s", src.Queue)
		require.Equal(t, "quorum", q.Spec.Type)
		// helm uninstall must not delete the queue and the records waiting in it (seen on a real cluster)
		require.Equal(t, "retain", q.Spec.DeletionPolicy, "Helm %s deletionPolicy", src.Queue)
		for k, v := range starterArgs {
			if k == "x-queue-type" {
				continue // spec.type
			}
			require.EqualValues(t, v, q.Spec.Arguments[k], "Helm %s argument %s", src.Queue, k)
		}
	}
	require.Equal(t, "quorum", crQueues[want.DLQ].Spec.Type)
	require.Equal(t, "retain", crQueues[want.DLQ].Spec.DeletionPolicy, "the DLQ holds what could not be written")
	crExchanges := map[string]string{}
	for _, e := range prod["Exchange"] {
		crExchanges[e.(*rmqExchange).Spec.Name] = e.(*rmqExchange).Spec.Type
	}
	require.Equal(t, exchanges, crExchanges)
	bindings := map[string]string{}
	for _, bb := range prod["Binding"] {
		bd := bb.(*rmqBinding)
		bindings[bd.Spec.Source+"→"+bd.Spec.Destination] = bd.Spec.RoutingKey
	}
	for _, src := range want.Sources() {
		require.Equal(t, src.RoutingKey, bindings[want.Exchange+"→"+src.Queue])
	}
	require.Contains(t, bindings, want.DLX+"→"+want.DLQ)
	pol := prod["Policy"][0].(*rmqPolicy)
	require.EqualValues(t, want.DeliveryLimit, pol.Spec.Definition["delivery-limit"])
	require.Equal(t, want.DLX, pol.Spec.Definition["dead-letter-exchange"])
	require.Equal(t, "at-least-once", pol.Spec.Definition["dead-letter-strategy"])
	require.Equal(t, "reject-publish", pol.Spec.Definition["overflow"])
	for _, src := range want.Sources() {
		require.Regexp(t, pol.Spec.Pattern, src.Queue)
	}
	require.NotRegexp(t, pol.Spec.Pattern, want.DLQ, "the DLQ must not dead-letter into itself")

	// The broker settings, the same for Helm as for compose.
	withCluster := rendered(t, append(append([]string(nil), valueSets["production"]...), "--set", "rabbitmqCluster.create=true"))
	require.Len(t, withCluster["RabbitmqCluster"], 1)
	cfg := withCluster["RabbitmqCluster"][0].(*rmqCluster).Spec.Rabbitmq.AdditionalConfig
	require.Contains(t, cfg, "consumer_timeout = 86400000")
	require.Contains(t, cfg, "max_message_size = 1048576")
	require.Equal(t, "tis-rabbitmq", withCluster["RabbitmqCluster"][0].(*rmqCluster).Name)
}

// TestComposeRunsTheServerThatRanHere: docker-compose.yml runs the Temporal server of the production
// profile (the Makefile's pinned version), prepares its two databases with the sql tool's steps the
// profile runs, with the profile's dynamic config and shards, and registers the default namespace
// (a standalone server creates none) and the four search attributes.
func TestComposeRunsTheServerThatRanHere(t *testing.T) {
	dir := root(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")}, cli.WithWorkingDirectory(dir), cli.WithName("writeback"))
	require.NoError(t, err)
	project, err := opts.LoadProject(context.Background())
	require.NoError(t, err)
	mk, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^TEMPORAL_SERVER_VERSION := v(\S+)`).FindSubmatch(mk)
	require.NotNil(t, m, "Makefile pins TEMPORAL_SERVER_VERSION")
	version := string(m[1])

	server := project.Services["temporal"]
	require.Equal(t, "temporalio/server:"+version, server.Image, "compose runs the server version the profile ran")
	env := func(svc string, k string) string {
		v := project.Services[svc].Environment[k]
		require.NotNil(t, v, "service %s sets %s", svc, k)
		return *v
	}
	db, vis := env("temporal", "DBNAME"), env("temporal", "VISIBILITY_DBNAME")
	require.Equal(t, "postgres12", env("temporal", "DB"))
	serverYAML, err := os.ReadFile(filepath.Join(dir, "deploy", "temporal", "server.yaml"))
	require.NoError(t, err)
	shards := regexp.MustCompile(`numHistoryShards: \{\{ env "NUM_HISTORY_SHARDS" \| default "(\d+)" \}\}`).FindSubmatch(serverYAML)
	require.NotNil(t, shards)
	require.Equal(t, string(shards[1]), env("temporal", "NUM_HISTORY_SHARDS"), "the profile's shard count")
	mounted := false
	for _, v := range server.Volumes {
		if v.Source == filepath.Join(dir, "deploy", "temporal", "dynamicconfig.yaml") {
			mounted = true
			require.Equal(t, v.Target, env("temporal", "DYNAMIC_CONFIG_FILE_PATH"))
		}
	}
	require.True(t, mounted, "the server reads deploy/temporal/dynamicconfig.yaml")

	schema, ok := project.Services["temporal-schema"]
	require.True(t, ok, "a one-shot service prepares the databases")
	require.Equal(t, "temporalio/admin-tools:"+version, schema.Image)
	script := strings.Join(schema.Command, " ")
	for _, d := range []struct{ name, dir string }{{db, "temporal"}, {vis, "visibility"}} {
		for _, step := range []string{"--db " + d.name + " create-database", "--db " + d.name + " setup-schema -v 0.0",
			"--db " + d.name + " update-schema -d /etc/temporal/schema/postgresql/v12/" + d.dir + "/versioned"} {
			require.Contains(t, script, step)
		}
	}
	require.Equal(t, "service_completed_successfully", server.DependsOn["temporal-schema"].Condition)

	setup := strings.Join(project.Services["temporal-setup"].Command, " ")
	require.Contains(t, setup, "operator namespace create", "a standalone server creates no default namespace")
	require.Equal(t, "temporalio/admin-tools:"+version, project.Services["temporal-setup"].Image)
	require.Contains(t, setup, strings.Join(contract.SearchAttributeNames, " "))
}
