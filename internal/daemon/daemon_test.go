package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tis-writeback/writeback/internal/telemetry"
)

func newShell(t *testing.T, body func(ctx context.Context, s *Shell) error) (*Shell, *atomic.Int32) {
	t.Helper()
	h := &telemetry.Health{}
	srv, err := telemetry.NewServer("127.0.0.1:0", telemetry.NewRegistry(), h)
	if err != nil {
		t.Fatal(err)
	}
	var fatals atomic.Int32
	return &Shell{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Server: srv, Health: h, Body: body,
		Fatal: func() { fatals.Add(1) }}, &fatals
}

func readyz(t *testing.T, s *Shell) int {
	t.Helper()
	resp, err := http.Get("http://" + s.Server.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Stop waits for the body to drain, then closes what it deferred, newest first; /readyz is red
// from the moment the stop begins.
func TestStopDrainsThenClosesNewestFirst(t *testing.T) {
	var order []string
	started := make(chan struct{})
	var readyAtDrain int
	var s *Shell
	s, fatals := newShell(t, func(ctx context.Context, sh *Shell) error {
		sh.Defer(func(context.Context) { order = append(order, "connection") })
		sh.Defer(func(context.Context) { order = append(order, "consumer") })
		sh.Health.SetReady(true)
		close(started)
		<-ctx.Done()
		readyAtDrain = readyz(t, s)
		order = append(order, "drained")
		return nil
	})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-started
	if got := readyz(t, s); got != http.StatusOK {
		t.Fatalf("/readyz while serving = %d, want 200", got)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"drained", "consumer", "connection"}
	if len(order) != 3 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Fatalf("order = %v, want %v", order, want)
	}
	if readyAtDrain != http.StatusServiceUnavailable {
		t.Fatalf("/readyz during the drain = %d, want 503", readyAtDrain)
	}
	if fatals.Load() != 0 {
		t.Fatal("a clean stop called Fatal")
	}
}

// An error before Stop is fatal; an error while stopping is not a cause of its own.
func TestBodyErrorIsFatalOnlyBeforeStop(t *testing.T) {
	s, fatals := newShell(t, func(context.Context, *Shell) error { return errors.New("cannot connect") })
	_ = s.Start(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for fatals.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if fatals.Load() != 1 {
		t.Fatalf("Fatal called %d times, want 1", fatals.Load())
	}
	_ = s.Stop(context.Background())

	s, fatals = newShell(t, func(ctx context.Context, _ *Shell) error { <-ctx.Done(); return ctx.Err() })
	_ = s.Start(context.Background())
	_ = s.Stop(context.Background())
	if fatals.Load() != 0 {
		t.Fatal("an error returned because of the stop called Fatal")
	}
}

// A body that does not drain in time does not hold the stop beyond its deadline.
func TestStopGivesUpAtItsDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s, _ := newShell(t, func(context.Context, *Shell) error { <-release; return nil })
	_ = s.Start(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_ = s.Stop(ctx)
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Stop took %v past a 200 ms deadline", d)
	}
}
