package stack

// The production profile: a Temporal server on PostgreSQL and a three-node RabbitMQ cluster, run on
// this machine as processes (no containers). The server's configuration is deploy/temporal/, the
// brokers' settings come from deploy/rabbitmq/rabbitmq.conf, so what runs here is what deploy/ ships.

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/proc"
	"github.com/tis-writeback/writeback/internal/rabbitnode"
)

// Profiles a stack runs on.
const (
	ProfileDev     = "dev"     // the CLI's dev server (SQLite) and the machine's RabbitMQ
	ProfileCluster = "cluster" // Temporal server on PostgreSQL, a three-node RabbitMQ cluster
)

// RabbitCluster is a RabbitMQ cluster of nodes on this machine, each a process of its own with its
// own ports and data directory (package rabbitnode), joined to the first.
type RabbitCluster struct {
	Nodes []*RabbitNode
}

// RabbitNode is one node of a RabbitCluster.
type RabbitNode = rabbitnode.Node

// StartRabbitCluster starts a fresh cluster of n nodes under dir (whatever dir held is removed),
// clusters them and waits until all run. name makes the node names unique on this machine.
// settings is a rabbitmq.conf whose lines every node gets (deploy/rabbitmq/rabbitmq.conf; its
// load_definitions is left out: writeback declares its topology itself).
func StartRabbitCluster(ctx context.Context, dir, name string, n int, settings string) (rc *RabbitCluster, err error) {
	if err := rabbitnode.Installed(); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	conf, err := rabbitnode.Settings(settings)
	if err != nil {
		return nil, err
	}
	tag := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(name))
	c := &RabbitCluster{}
	defer func() {
		if err != nil {
			c.Close() // the nodes already started
		}
	}()
	for i := 1; i <= n; i++ {
		nd, err := rabbitnode.Start(rabbitnode.Config{Dir: dir, Name: fmt.Sprintf("wb-%s-%d@localhost", tag, i), Settings: conf})
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, nd)
	}
	for i, nd := range c.Nodes {
		if err := nd.Await(ctx); err != nil {
			return nil, err
		}
		if i == 0 {
			continue
		}
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", c.Nodes[0].Name}, {"start_app"}} {
			if _, err := nd.Ctl(args...); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Ctl runs rabbitmqctl against a node.
func (c *RabbitCluster) Ctl(nd *RabbitNode, args ...string) (string, error) { return nd.Ctl(args...) }

// URL lists every node for AMQP_URL (comma-separated): clients fail over between them.
func (c *RabbitCluster) URL() string {
	urls := make([]string, len(c.Nodes))
	for i, nd := range c.Nodes {
		urls[i] = nd.URL()
	}
	return strings.Join(urls, ",")
}

// Leader is the node that leads a quorum queue now.
func (c *RabbitCluster) Leader(queue string) (*RabbitNode, error) {
	for _, asked := range c.Nodes {
		out, err := asked.Ctl("list_queues", "--quiet", "--no-table-headers", "name", "leader")
		if err != nil {
			continue // that node is down; ask another
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == queue {
				for _, nd := range c.Nodes {
					if nd.Name == f[1] {
						return nd, nil
					}
				}
			}
		}
	}
	return nil, fmt.Errorf("no node names a leader of %s", queue)
}

// StopNode stops a node's process (SIGTERM: the node shuts down as on a host's shutdown).
func (c *RabbitCluster) StopNode(nd *RabbitNode) { nd.Stop() }

// StartNode starts a stopped node again and waits until it runs (it rejoins by itself).
func (c *RabbitCluster) StartNode(ctx context.Context, nd *RabbitNode) error {
	if err := nd.Proc.Start(); err != nil {
		return err
	}
	return nd.Await(ctx)
}

// Close stops every node, last first.
func (c *RabbitCluster) Close() {
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		c.Nodes[i].Stop()
	}
}

// TemporalServer is the production profile's Temporal server: bin/temporal-server with
// deploy/temporal/server.yaml, on two PostgreSQL databases prepared by bin/temporal-sql-tool.
type TemporalServer struct {
	Proc      *proc.Process
	Address   string
	Databases []string // the default and the visibility database
}

// TemporalServerConfig says where the server keeps its data.
type TemporalServerConfig struct {
	Root     string // the repository: bin/ and deploy/temporal/
	LogDir   string
	Database string // the default store's database; the visibility store's is Database + "_visibility"
	// Ports: the frontend's gRPC port; the others are taken free.
	FrontendPort int
	Shards       int  // numHistoryShards (0: the config's default); fixed for the databases' life
	AsyncCommit  bool // synchronous_commit=off on both databases (else the server default, on)
}

// PrepareTemporalDatabases creates the two databases and brings their schemas to the server's
// version; run again, it changes nothing (create-database and the schema steps are idempotent).
func PrepareTemporalDatabases(root, database string) error {
	steps := [][]string{}
	for _, db := range []struct{ name, schema string }{{database, "postgresql/v12/temporal"}, {database + "_visibility", "postgresql/v12/visibility"}} {
		steps = append(steps,
			[]string{"--db", db.name, "create-database"},
			[]string{"--db", db.name, "setup-schema", "-v", "0.0"},
			[]string{"--db", db.name, "update-schema", "-s", db.schema})
	}
	for _, args := range steps {
		if out, err := sqlTool(root, args...); err != nil {
			return fmt.Errorf("temporal-sql-tool %s: %v\n%s", strings.Join(args, " "), err, lastLines(out, 5))
		}
	}
	return nil
}

// sqlTool runs bin/temporal-sql-tool against the machine's PostgreSQL (POSTGRES_SEEDS, DB_PORT,
// POSTGRES_USER, POSTGRES_PWD as the server's config reads them).
func sqlTool(root string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(root, "bin", "temporal-sql-tool"), args...)
	cmd.Env = append(os.Environ(), "SQL_PLUGIN=postgres12", "SQL_HOST="+envOr("POSTGRES_SEEDS", "127.0.0.1"),
		"SQL_PORT="+envOr("DB_PORT", "5432"), "SQL_USER="+envOr("POSTGRES_USER", "postgres"), "SQL_PASSWORD="+os.Getenv("POSTGRES_PWD"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// DropTemporalDatabases drops what PrepareTemporalDatabases made (test runs leave nothing behind).
func DropTemporalDatabases(root, database string) error {
	var errs []error
	for _, db := range []string{database, database + "_visibility"} {
		if out, err := sqlTool(root, "--db", db, "drop-database", "-f"); err != nil {
			errs = append(errs, fmt.Errorf("drop %s: %v: %s", db, err, lastLines(out, 3)))
		}
	}
	return errors.Join(errs...)
}

// StartTemporalServer prepares the databases, starts the server, and sets up the namespace
// `default` (30 days' retention, as parked records need) with writeback's search attributes.
func StartTemporalServer(ctx context.Context, c TemporalServerConfig) (*TemporalServer, error) {
	if err := PrepareTemporalDatabases(c.Root, c.Database); err != nil {
		return nil, err
	}
	commit := "DEFAULT"
	if c.AsyncCommit {
		commit = "off"
	}
	for _, db := range []string{c.Database, c.Database + "_visibility"} {
		if err := psql(fmt.Sprintf(`ALTER DATABASE %q SET synchronous_commit = %s`, db, commit)); err != nil {
			return nil, err
		}
	}
	if c.FrontendPort == 0 {
		c.FrontendPort = freePort()
	}
	env := []string{"DBNAME=" + c.Database, "VISIBILITY_DBNAME=" + c.Database + "_visibility",
		"TEMPORAL_DYNAMIC_CONFIG=" + filepath.Join(c.Root, "deploy", "temporal", "dynamicconfig.yaml"),
		"FRONTEND_GRPC_PORT=" + strconv.Itoa(c.FrontendPort)}
	if c.Shards > 0 {
		env = append(env, "NUM_HISTORY_SHARDS="+strconv.Itoa(c.Shards))
	}
	// The SQL schema keeps a membership port as a smallint: those must be below 32768, where the
	// kernel's ephemeral ports (freePort) never are.
	for _, k := range []string{"FRONTEND_MEMBERSHIP_PORT", "FRONTEND_HTTP_PORT", "MATCHING_GRPC_PORT", "MATCHING_MEMBERSHIP_PORT",
		"HISTORY_GRPC_PORT", "HISTORY_MEMBERSHIP_PORT", "WORKER_GRPC_PORT", "WORKER_MEMBERSHIP_PORT", "TEMPORAL_METRICS_PORT"} {
		env = append(env, k+"="+strconv.Itoa(lowFreePort()))
	}
	s := &TemporalServer{Address: fmt.Sprintf("127.0.0.1:%d", c.FrontendPort), Databases: []string{c.Database, c.Database + "_visibility"},
		Proc: &proc.Process{Name: "temporal-server", Bin: filepath.Join(c.Root, "bin", "temporal-server"), LogDir: c.LogDir, Env: env,
			Args: []string{"--config-file", filepath.Join(c.Root, "deploy", "temporal", "server.yaml"), "--allow-no-auth", "start"}}}
	if err := s.Proc.Start(); err != nil {
		return nil, err
	}
	if err := s.setUp(ctx); err != nil {
		s.Proc.Stop()
		return nil, err
	}
	return s, nil
}

// setUp waits for the frontend, then registers the namespace and the search attributes (both
// idempotent), and waits until the namespace takes workflows.
func (s *TemporalServer) setUp(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if last = s.trySetUp(ctx); last == nil {
			return nil
		}
		if s.Proc.Pid() != 0 && s.Proc.Exited() {
			return fmt.Errorf("Temporal server exited: %w (log: %s)", last, strings.Join(s.Proc.LogFiles(), ", "))
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("Temporal server at %s did not come up: %w (log: %s)", s.Address, last, strings.Join(s.Proc.LogFiles(), ", "))
}

func (s *TemporalServer) trySetUp(ctx context.Context) error {
	c, err := DialTemporal(s.Address)
	if err != nil {
		return err
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.WorkflowService().DescribeNamespace(rctx, &workflowservice.DescribeNamespaceRequest{Namespace: "default"}); err != nil {
		_, err = c.WorkflowService().RegisterNamespace(rctx, &workflowservice.RegisterNamespaceRequest{Namespace: "default",
			WorkflowExecutionRetentionPeriod: durationpb.New(30 * 24 * time.Hour)})
		if err != nil {
			return fmt.Errorf("register namespace default: %w", err)
		}
		return errors.New("namespace default registered; waiting until it is in use")
	}
	have, err := c.OperatorService().ListSearchAttributes(rctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		return err
	}
	missing := map[string]enums.IndexedValueType{}
	for _, k := range contract.SearchAttributeNames {
		if _, ok := have.GetCustomAttributes()[k]; !ok {
			missing[k] = enums.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	if len(missing) > 0 {
		_, err := c.OperatorService().AddSearchAttributes(rctx, &operatorservice.AddSearchAttributesRequest{Namespace: "default",
			SearchAttributes: missing})
		if err != nil {
			return fmt.Errorf("add search attributes: %w", err)
		}
		return errors.New("search attributes added; checking again")
	}
	// The namespace takes workflows: a visibility query answers.
	_, err = c.CountWorkflow(rctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: `WritebackState="Updating"`})
	return err
}

// Restart stops the server and starts it again (SIGTERM: a rolling restart of Temporal).
func (s *TemporalServer) Restart(ctx context.Context, down time.Duration) error {
	s.Proc.Stop()
	time.Sleep(down)
	if err := s.Proc.Start(); err != nil {
		return err
	}
	return s.setUp(ctx)
}

// lowFreePort is a free port in 20000..32767 (below the kernel's ephemeral range).
func lowFreePort() int {
	for {
		p := 20000 + int(mrand.IntN(12768))
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			ln.Close()
			return p
		}
	}
}

// psql runs one statement on the machine's PostgreSQL (as the sql tool reaches it).
func psql(stmt string) error {
	cmd := exec.Command("psql", "-h", envOr("POSTGRES_SEEDS", "127.0.0.1"), "-p", envOr("DB_PORT", "5432"),
		"-U", envOr("POSTGRES_USER", "postgres"), "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", stmt)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+os.Getenv("POSTGRES_PWD"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("psql %s: %v: %s", stmt, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
