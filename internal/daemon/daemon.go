// Package daemon is the shell the two long-running binaries share, the worker and `starter consume`:
// /metrics, /healthz and /readyz answer from the first moment; the connections are made in the
// background (each dial waits for its server, so a daemon started before its servers waits for
// them); and a stop turns /readyz red, ends the work, lets it drain, then closes what was opened,
// newest first. It knows nothing of fx: the mains hang Start and Stop on fx's lifecycle and make
// Fatal an fx.Shutdowner call.
package daemon

import (
	"context"
	"log/slog"
	"sync"

	"github.com/tis-writeback/writeback/internal/telemetry"
)

// Shell runs one daemon's Body between Start and Stop.
type Shell struct {
	Log    *slog.Logger
	Server *telemetry.Server
	Health *telemetry.Health
	// Body connects and serves. It runs in the background from Start; its ctx ends at Stop, and
	// Stop waits for it to return (the drain). What Stop must close afterwards, Body hands to Defer.
	// An error it returns before Stop is fatal.
	Body func(ctx context.Context, s *Shell) error
	// Fatal is called after a fatal error was logged; the process should stop with a non-zero code.
	Fatal func()

	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	closers []func(context.Context)
}

// Defer registers f to run at Stop after Body has returned; the last registered runs first.
func (s *Shell) Defer(f func(context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, f)
}

// Start serves the health and metrics endpoints and starts Body; it does not block.
func (s *Shell) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		if err := s.Server.Serve(); err != nil {
			s.fatal(ctx, "metrics server failed", err)
		}
	}()
	go func() {
		defer close(s.done)
		if err := s.Body(ctx, s); err != nil {
			s.fatal(ctx, "stopping", err)
		}
	}()
	return nil
}

func (s *Shell) fatal(ctx context.Context, msg string, err error) {
	if ctx.Err() != nil { // already stopping: not a cause of its own
		s.Log.Warn(msg+" while stopping", "error", err)
		return
	}
	s.Log.Error(msg, "error", err)
	if s.Fatal != nil {
		s.Fatal()
	}
}

// Stop: not ready, Body's context ended, Body awaited (at most until ctx ends), then the deferred
// closers, newest first, and the HTTP server.
func (s *Shell) Stop(ctx context.Context) error {
	s.Health.SetReady(false)
	s.cancel()
	select {
	case <-s.done:
	case <-ctx.Done():
		s.Log.Warn("stop timeout reached before the work drained")
	}
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i](ctx)
	}
	return s.Server.Shutdown(ctx)
}
