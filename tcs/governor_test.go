package tcs

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestGovernor(clock *fakeClock, changes *[]string, recovered *[]string) *Governor {
	return NewGovernor(GovernorOptions{Rate: 1e6, Window: 30 * time.Second, MinFailures: 5, MinCallers: 3, ProbeEvery: 5 * time.Second,
		Now:       clock.now,
		OnChange:  func(from, to Mode, why string) { *changes = append(*changes, string(from)+"→"+string(to)) },
		OnRecover: func(c []string) { *recovered = append(*recovered, c...) }})
}

func TestOutageNeedsFailuresFromSeveralCallersAndNoWorkingAnswer(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	var changes, recovered []string
	g := newTestGovernor(clock, &changes, &recovered)
	one := WithCaller(context.Background(), "record-1")
	for i := 0; i < 20; i++ {
		g.observe(one, Transient)
	}
	m, _ := g.Mode()
	require.Equal(t, ModeNormal, m, "one record's failures are not an outage")
	for i := 0; i < 10; i++ {
		g.observe(WithCaller(context.Background(), fmt.Sprintf("r%d", i)), Permanent) // 404s: TCS works
	}
	for i := 0; i < 10; i++ {
		g.observe(WithCaller(context.Background(), fmt.Sprintf("r%d", i)), Transient)
	}
	m, _ = g.Mode()
	require.Equal(t, ModeNormal, m, "answers that show TCS working in the window: no outage")
	clock.add(31 * time.Second)
	for i := 0; i < 5; i++ {
		g.observe(WithCaller(context.Background(), fmt.Sprintf("r%d", i)), Transient)
	}
	m, _ = g.Mode()
	require.Equal(t, ModeOutage, m)
	require.Equal(t, []string{"normal→outage"}, changes)

	// Only a probe every 5 s goes out; the refused callers are woken when a probe gets an answer.
	ctx := WithCaller(context.Background(), "waiting-1")
	require.Error(t, g.acquire(ctx))
	clock.add(5 * time.Second)
	probe := WithCaller(context.Background(), "prober")
	require.NoError(t, g.acquire(probe))
	require.Error(t, g.acquire(WithCaller(context.Background(), "waiting-2")), "one probe per interval")
	g.observe(probe, Transient)
	m, _ = g.Mode()
	require.Equal(t, ModeOutage, m)
	clock.add(5 * time.Second)
	require.NoError(t, g.acquire(probe))
	g.observe(probe, OK)
	m, _ = g.Mode()
	require.Equal(t, ModeNormal, m)
	require.Equal(t, []string{"normal→outage", "outage→normal"}, changes)
	require.ElementsMatch(t, []string{"waiting-1", "waiting-2"}, recovered)
	require.NoError(t, g.acquire(ctx))
}

func TestHoldRefusesEverythingUntilRelease(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	var changes, recovered []string
	g := newTestGovernor(clock, &changes, &recovered)
	g.SetHold(true, "maintenance")
	for i := 0; i < 3; i++ {
		clock.add(10 * time.Second) // no probes in a hold
		err := g.acquire(WithCaller(context.Background(), fmt.Sprintf("r%d", i)))
		require.Error(t, err)
		require.Contains(t, err.Error(), "on hold")
	}
	g.SetHold(false, "done")
	require.NoError(t, g.acquire(context.Background()))
	require.Equal(t, []string{"normal→hold", "hold→normal"}, changes)
	require.Len(t, recovered, 3)
}

// A request that waited for its rate slot while a hold began is not sent.
func TestHoldThatBeginsDuringTheRateWait(t *testing.T) {
	g := NewGovernor(GovernorOptions{Rate: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, g.acquire(ctx)) // the burst of 1
	done := make(chan error, 1)
	go func() { done <- g.acquire(ctx) }() // waits ~0.5 s for its slot
	time.Sleep(100 * time.Millisecond)
	g.SetHold(true, "now")
	err := <-done
	require.Error(t, err)
	require.Contains(t, err.Error(), "on hold")
	// A wait longer than the caller's deadline is refused, not failed against TCS.
	g.SetHold(false, "")
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	_ = g.acquire(short)
	err = g.acquire(short)
	require.Error(t, err)
	require.Contains(t, err.Error(), "rate cap")
}

// Recovery traffic (retries of dead letters) never starves fresh records under the one cap: a
// fresh request that arrives behind a queue of recovery requests goes next.
func TestFreshRequestsGoAheadOfRecovery(t *testing.T) {
	g := NewGovernor(GovernorOptions{Rate: 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, g.acquire(ctx)) // spend the burst of 2
	require.NoError(t, g.acquire(ctx))
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ { // one second of recovery requests queue up
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if g.acquire(AsRecovery(WithCaller(ctx, fmt.Sprintf("retry-%d", i)))) == nil {
				mu.Lock()
				order = append(order, "retry")
				mu.Unlock()
			}
		}(i)
	}
	time.Sleep(150 * time.Millisecond)
	start := time.Now()
	require.NoError(t, g.acquire(WithCaller(ctx, "fresh")))
	waited := time.Since(start)
	mu.Lock()
	before := len(order)
	mu.Unlock()
	wg.Wait()
	require.LessOrEqual(t, before, 5, "the fresh request went ahead of the queued recovery requests")
	require.Less(t, waited, 400*time.Millisecond)
	require.Len(t, order, 20, "recovery requests go too, after it")
}
