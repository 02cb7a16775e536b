package proc

import (
	"os"
	"strings"
	"testing"
	"time"
)

// Each Start is an incarnation with a log of its own; Stop ends the whole process group (a child
// the process started too); a process that ends by itself is seen as Exited.
func TestIncarnationsStopAndExit(t *testing.T) {
	dir := t.TempDir()
	p := &Process{Name: "sh", Bin: "/bin/sh", Args: []string{"-c", `echo "run $RUN"; sleep 60 & wait`}, Env: []string{"RUN=one"}, LogDir: dir}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	time.Sleep(200 * time.Millisecond)
	if p.Exited() {
		t.Fatal("Exited while running")
	}
	t0 := time.Now()
	p.Stop()
	if time.Since(t0) > 5*time.Second {
		t.Fatal("Stop waited for the child sleep: the group was not signalled")
	}
	if p.Pid() != 0 {
		t.Fatal("a stopped process still has a PID")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == pid {
		t.Fatal("a new incarnation has the old PID")
	}
	p.Kill()
	if logs := p.LogFiles(); len(logs) != 2 {
		t.Fatalf("log files %v, want one per incarnation", logs)
	}
	b, _ := os.ReadFile(p.LogFiles()[0])
	if !strings.Contains(string(b), "run one") {
		t.Fatalf("log %q lacks the output (and the environment)", b)
	}

	q := &Process{Name: "true", Bin: "/bin/true", LogDir: dir}
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !q.Exited() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !q.Exited() {
		t.Fatal("a process that ended by itself is not Exited")
	}
}
