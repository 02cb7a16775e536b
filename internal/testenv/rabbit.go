package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tis-writeback/writeback/internal/rabbitnode"
)

// The tests' RabbitMQ is a node of their own, never the machine's: scripts/test.sh starts one
// (internal/testenv/cmd/testrabbit) and names it in AMQP_URL, WRITEBACK_RABBIT_NODE and
// WRITEBACK_RABBIT_HOME. A test binary run without them (cd integration && go test ./...) starts one itself
// the first time a test asks for RabbitMQ, names it the same way in its environment (for the
// processes the tests start), and stops it when the binary ends (Main; and the node dies with the
// binary if that is killed). With AMQP_URL alone the tests use that broker, but the ones that stop,
// close or reconfigure their broker skip: it is not the run's own.

// RabbitMQ is the broker the tests use.
type RabbitMQ struct {
	URL  string         // AMQP_URL
	Node rabbitnode.Ref // the node behind URL; zero when AMQP_URL names a broker this run did not start
}

var rabbit struct {
	once   sync.Once
	r      *RabbitMQ
	skip   string // why the tests that need RabbitMQ skip
	err    error
	own    *rabbitnode.Node // the node this binary started, and its directory
	ownDir string
}

// Rabbit is the tests' RabbitMQ (started on first use when the environment names none).
func Rabbit(t testing.TB) *RabbitMQ {
	t.Helper()
	rabbit.once.Do(findRabbit)
	switch {
	case rabbit.err != nil:
		t.Fatalf("RabbitMQ for the tests: %v", rabbit.err)
	case rabbit.skip != "":
		t.Skip(rabbit.skip)
	}
	return rabbit.r
}

// AMQPURL is the URL of the tests' RabbitMQ.
func AMQPURL(t testing.TB) string { t.Helper(); return Rabbit(t).URL }

// RabbitNode is the tests' own RabbitMQ node, for a test that stops it, closes its connections or
// changes its settings; the test skips if AMQP_URL names a broker this run did not start.
func RabbitNode(t testing.TB) rabbitnode.Ref {
	t.Helper()
	r := Rabbit(t)
	if r.Node.Name == "" {
		t.Skipf("this test stops, disconnects or reconfigures its RabbitMQ: it runs only against a node of the run's own "+
			"(make test, or go test without AMQP_URL), not AMQP_URL=%s without %s", redactURL(r.URL), rabbitnode.EnvNode)
	}
	return r.Node
}

// RabbitCtl runs rabbitmqctl against the tests' own node (-n, with its cookie) and returns its output.
func RabbitCtl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := RabbitNode(t).Ctl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Main runs a package's tests (call it from TestMain) and then stops the RabbitMQ node they started,
// if they started one.
func Main(m *testing.M) {
	code := m.Run()
	stopRabbit()
	os.Exit(code)
}

func findRabbit() {
	u, node, home := os.Getenv(rabbitnode.EnvURL), os.Getenv(rabbitnode.EnvNode), os.Getenv(rabbitnode.EnvHome)
	switch {
	case node != "":
		if u == "" || home == "" {
			rabbit.err = fmt.Errorf("%s is set, but not %s and %s with it", rabbitnode.EnvNode, rabbitnode.EnvURL, rabbitnode.EnvHome)
			return
		}
		rabbit.r = &RabbitMQ{URL: u, Node: rabbitnode.Ref{Name: node, Home: home}}
		return
	case u != "":
		rabbit.r = &RabbitMQ{URL: u}
		return
	}
	if err := rabbitnode.Installed(); err != nil {
		rabbit.skip = fmt.Sprintf("no RabbitMQ for this test: %s is unset and a node of its own cannot be started: %v "+
			"(make test starts one; the tests never use the machine's broker by default)", rabbitnode.EnvURL, err)
		return
	}
	root, err := repoRoot()
	if err != nil {
		rabbit.err = err
		return
	}
	dir, err := os.MkdirTemp("", "writeback-test-rabbit-")
	if err != nil {
		rabbit.err = err
		return
	}
	rabbit.ownDir = dir
	nd, err := rabbitnode.StartSingle(context.Background(), filepath.Join(dir, "node"), fmt.Sprintf("writeback-test-%d@localhost", os.Getpid()),
		filepath.Join(root, "deploy", "rabbitmq", "rabbitmq.conf"), true)
	if err != nil {
		rabbit.err = err
		_ = os.RemoveAll(dir)
		return
	}
	rabbit.own = nd
	for _, kv := range nd.Env() { // the processes the tests start find it too
		k, v, _ := strings.Cut(kv, "=")
		_ = os.Setenv(k, v)
	}
	rabbit.r = &RabbitMQ{URL: nd.URL(), Node: nd.Ref}
}

func stopRabbit() {
	if rabbit.own != nil {
		rabbit.own.Stop()
	}
	if rabbit.ownDir != "" {
		_ = os.RemoveAll(rabbit.ownDir)
	}
}

// redactURL drops the password from an AMQP URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(not a URL)"
	}
	return u.Redacted()
}
