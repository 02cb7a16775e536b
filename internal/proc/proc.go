// Package proc controls the child processes of the harnesses (make run, the benchmarks, the chaos
// runs, the tests that restart a server): start, stop, kill and start again, one log file per
// incarnation.
package proc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Process is one managed child process, in a process group of its own (a signal reaches its
// children too); each Start is a new incarnation with a new log file.
type Process struct {
	Name   string
	Bin    string
	Args   []string
	Env    []string // added to this process's environment
	LogDir string   // each incarnation logs to LogDir/Name.N.log
	// DieWithParent: the process gets SIGTERM when this one dies, even by SIGKILL (Linux's
	// parent-death signal; it follows the OS thread that started it, which Go keeps while the
	// program runs unless a goroutine locked to it ends).
	DieWithParent bool
	mu            sync.Mutex
	cmd           *exec.Cmd
	incarnation   int
	done          chan struct{}
}

// Start starts a new incarnation (the first, or one after Kill or Stop).
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.incarnation++
	f, err := os.Create(filepath.Join(p.LogDir, fmt.Sprintf("%s.%d.log", p.Name, p.incarnation)))
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if p.DieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() { p.signal(syscall.SIGKILL, time.Second) }

// Stop sends SIGTERM and waits up to 60 s.
func (p *Process) Stop() { p.signal(syscall.SIGTERM, 60*time.Second) }

func (p *Process) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Exited reports whether the running incarnation has ended by itself.
func (p *Process) Exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Pid is the running incarnation's PID (0 if none).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// LogFiles lists every incarnation's log file.
func (p *Process) LogFiles() []string {
	files, _ := filepath.Glob(filepath.Join(p.LogDir, p.Name+".*.log"))
	return files
}
