// Package rabbitnode runs RabbitMQ nodes of writeback's own on this machine: each a process with its
// own node name, ports, data directory, settings and Erlang cookie, so that nothing done to it (stop,
// close its connections, change its settings) reaches the machine's own RabbitMQ. The production
// profile's three-node cluster (bench/stack) and the tests' node (make test, internal/testenv) both
// start theirs here.
package rabbitnode

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tis-writeback/writeback/internal/proc"
)

// Bin is where Debian's package keeps the scripts that run a node as the calling user (the /usr/sbin
// wrappers switch to the rabbitmq user, who cannot write our directories, and whose HOME holds the
// machine node's cookie).
const Bin = "/usr/lib/rabbitmq/bin"

// The environment scripts/test.sh gives the tests: the node's AMQP URL, its Erlang node name and the
// HOME that holds its cookie (what rabbitmqctl -n needs).
const (
	EnvURL  = "AMQP_URL"
	EnvNode = "WRITEBACK_RABBIT_NODE"
	EnvHome = "WRITEBACK_RABBIT_HOME"
)

// Installed says whether the server scripts are there.
func Installed() error {
	if _, err := os.Stat(filepath.Join(Bin, "rabbitmq-server")); err != nil {
		return fmt.Errorf("RabbitMQ's server scripts are not at %s (Debian: apt-get install rabbitmq-server)", Bin)
	}
	return nil
}

// Ref names a running node for rabbitmqctl: its Erlang node name and the HOME with its cookie.
type Ref struct {
	Name string // e.g. writeback-test-1234@localhost
	Home string
}

// Ctl runs rabbitmqctl against the node (never the machine's default node).
func (r Ref) Ctl(args ...string) (string, error) {
	if r.Name == "" || r.Home == "" {
		return "", fmt.Errorf("rabbitmqctl %s: no node named", strings.Join(args, " "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(Bin, "rabbitmqctl"), append([]string{"-n", r.Name}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+r.Home, "ERL_EPMD_ADDRESS=127.0.0.1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl -n %s %s: %v: %s", r.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Node is a node this process started.
type Node struct {
	Ref
	Port     int // AMQP, on 127.0.0.1
	DistPort int
	Proc     *proc.Process
}

// Config of a node.
type Config struct {
	// Dir holds what the nodes of one cluster share (HOME with the Erlang cookie, the plugins and env
	// files, the process logs) and each node's own directory.
	Dir      string
	Name     string // Erlang node name, unique on this machine
	Settings string // rabbitmq.conf lines (the listener is added)
	// DieWithParent: the node gets SIGTERM when this process dies (a test binary killed by its
	// timeout leaves no node behind).
	DieWithParent bool
}

// Start starts a node (without waiting for it: Await).
func Start(c Config) (*Node, error) {
	if err := Installed(); err != nil {
		return nil, err
	}
	home := filepath.Join(c.Dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	cookie := make([]byte, 16)
	_, _ = rand.Read(cookie)
	if err := writeIfMissing(filepath.Join(home, ".erlang.cookie"), strings.ToUpper(hex.EncodeToString(cookie)), 0o400); err != nil {
		return nil, err
	}
	plugins := filepath.Join(c.Dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[].\n"), 0o644); err != nil {
		return nil, err
	}
	env := filepath.Join(c.Dir, "rabbitmq-env.conf") // empty: not the machine's own node settings
	if err := os.WriteFile(env, nil, 0o644); err != nil {
		return nil, err
	}
	nd := &Node{Ref: Ref{Name: c.Name, Home: home}, Port: freePort(), DistPort: freePort()}
	nodeDir := filepath.Join(c.Dir, strings.SplitN(c.Name, "@", 2)[0])
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(nodeDir, "rabbitmq.conf")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("listeners.tcp.1 = 127.0.0.1:%d\n%s", nd.Port, c.Settings)), 0o644); err != nil {
		return nil, err
	}
	nd.Proc = &proc.Process{Name: strings.SplitN(c.Name, "@", 2)[0], Bin: filepath.Join(Bin, "rabbitmq-server"), LogDir: filepath.Join(c.Dir, "logs"),
		DieWithParent: c.DieWithParent,
		Env: []string{"HOME=" + home, "RABBITMQ_CONF_ENV_FILE=" + env, "RABBITMQ_NODENAME=" + nd.Name,
			"RABBITMQ_NODE_PORT=" + strconv.Itoa(nd.Port), "RABBITMQ_DIST_PORT=" + strconv.Itoa(nd.DistPort),
			"RABBITMQ_MNESIA_BASE=" + filepath.Join(nodeDir, "mnesia"), "RABBITMQ_LOG_BASE=" + filepath.Join(nodeDir, "log"),
			"RABBITMQ_CONFIG_FILE=" + cfg, "RABBITMQ_ENABLED_PLUGINS_FILE=" + plugins,
			"ERL_EPMD_ADDRESS=127.0.0.1", "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"}}
	if err := os.MkdirAll(nd.Proc.LogDir, 0o755); err != nil {
		return nil, err
	}
	if err := nd.Proc.Start(); err != nil {
		return nil, err
	}
	return nd, nil
}

// Await waits until the node runs (90 s at most).
func (nd *Node) Await(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := nd.Ctl("await_startup", "--timeout", "5")
		if err == nil {
			return nil
		}
		if nd.Proc.Pid() != 0 && nd.Proc.Exited() {
			return fmt.Errorf("RabbitMQ node %s exited (log: %s): %w", nd.Name, strings.Join(nd.Proc.LogFiles(), ", "), err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("RabbitMQ node %s did not start: %w", nd.Name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// URL is the node's AMQP URL.
func (nd *Node) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", nd.Port) }

// Env is the environment that names this node to the tests (scripts/test.sh exports it).
func (nd *Node) Env() []string {
	return []string{EnvURL + "=" + nd.URL(), EnvNode + "=" + nd.Name, EnvHome + "=" + nd.Home}
}

// Stop stops the node's process (SIGTERM: the node shuts down as on a host's shutdown).
func (nd *Node) Stop() { nd.Proc.Stop() }

// StartSingle starts one node under dir (whatever dir held is removed) with the settings of the
// rabbitmq.conf at settingsFile, and waits until it runs.
func StartSingle(ctx context.Context, dir, name, settingsFile string, dieWithParent bool) (*Node, error) {
	settings, err := Settings(settingsFile)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	nd, err := Start(Config{Dir: dir, Name: name, Settings: settings, DieWithParent: dieWithParent})
	if err != nil {
		return nil, err
	}
	if err := nd.Await(ctx); err != nil {
		nd.Stop()
		return nil, err
	}
	return nd, nil
}

// Settings keeps the lines of a rabbitmq.conf (deploy/rabbitmq/rabbitmq.conf) that apply to a node
// here: its load_definitions is left out (writeback declares its topology itself).
func Settings(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "load_definitions") {
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String(), sc.Err()
}

func writeIfMissing(path, content string, mode os.FileMode) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return os.WriteFile(path, []byte(content), mode)
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
