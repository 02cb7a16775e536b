package guard

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tis-writeback/writeback/tcs"
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

func newTestGate(clock *fakeClock, changes *[]string, recovered *[]string) *gate {
	return newGate(gateOptions{Rate: 1e6, Window: 30 * time.Second, MinFailures: 5, MinCallers: 3, ProbeEvery: 5 * time.Second,
		Now:       clock.now,
		OnChange:  func(from, to Mode, why string) { *changes = append(*changes, string(from)+"→"+string(to)) },
		OnRecover: func(c []string) { *recovered = append(*recovered, c...) }})
}

func TestOutageNeedsFailuresFromSeveralCallersAndNoWorkingAnswer(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	var changes, recovered []string
	g := newTestGate(clock, &changes, &recovered)
	one := WithCaller(context.Background(), "record-1")
	for i := 0; i < 20; i++ {
		g.Observe(one, tcs.Transient)
	}
	m, _ := g.Mode()
	require.Equal(t, ModeNormal, m, "one record's failures are not an outage")
	for i := 0; i < 10; i++ {
		g.Observe(WithCaller(context.Background(), fmt.Sprintf("r%d", i)), tcs.Permanent) // 404s: TCS works
	}
	for i := 0; i < 10; i++ {
		g.Observe(WithCaller(context.Background(), fmt.Sprintf("r%d", i)), tcs.Transient)
	}
	m, _ = g.Mode()
	require.Equal(t, ModeNormal, m, "answers that show TCS working in the window: no outage")
	clock.add(31 * time.Second)
	for i := 0; i < 5; i++ {
		g.Observe(WithCaller(context.Background(), fmt.Sprintf("r%d", i)), tcs.Transient)
	}
	m, _ = g.Mode()
	require.Equal(t, ModeOutage, m)
	require.Equal(t, []string{"normal→outage"}, changes)

	// Only a probe every 5 s goes out; the refused callers are woken when a probe gets an answer.
	ctx := WithCaller(context.Background(), "waiting-1")
	require.Error(t, g.Admit(ctx))
	clock.add(5 * time.Second)
	probe := WithCaller(context.Background(), "prober")
	require.NoError(t, g.Admit(probe))
	require.Error(t, g.Admit(WithCaller(context.Background(), "waiting-2")), "one probe per interval")
	g.Observe(probe, tcs.Transient)
	m, _ = g.Mode()
	require.Equal(t, ModeOutage, m)
	clock.add(5 * time.Second)
	require.NoError(t, g.Admit(probe))
	g.Observe(probe, tcs.OK)
	m, _ = g.Mode()
	require.Equal(t, ModeNormal, m)
	require.Equal(t, []string{"normal→outage", "outage→normal"}, changes)
	require.ElementsMatch(t, []string{"waiting-1", "waiting-2"}, recovered)
	require.NoError(t, g.Admit(ctx))
}

func TestHoldRefusesEverythingUntilRelease(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	var changes, recovered []string
	g := newTestGate(clock, &changes, &recovered)
	g.SetHold(true, "maintenance")
	for i := 0; i < 3; i++ {
		clock.add(10 * time.Second) // no probes in a hold
		err := g.Admit(WithCaller(context.Background(), fmt.Sprintf("r%d", i)))
		require.Error(t, err)
		require.Contains(t, err.Error(), "on hold")
	}
	g.SetHold(false, "done")
	require.NoError(t, g.Admit(context.Background()))
	require.Equal(t, []string{"normal→hold", "hold→normal"}, changes)
	require.Len(t, recovered, 3)
}

// A request that waited for its rate slot while a hold began is not sent.
func TestHoldThatBeginsDuringTheRateWait(t *testing.T) {
	g := newGate(gateOptions{Rate: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, g.Admit(ctx)) // the burst of 1
	done := make(chan error, 1)
	go func() { done <- g.Admit(ctx) }() // waits ~0.5 s for its slot
	time.Sleep(100 * time.Millisecond)
	g.SetHold(true, "now")
	err := <-done
	require.Error(t, err)
	require.Contains(t, err.Error(), "on hold")
	// A wait longer than the caller's deadline is refused, not failed against TCS.
	g.SetHold(false, "")
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	_ = g.Admit(short)
	err = g.Admit(short)
	require.Error(t, err)
	require.Contains(t, err.Error(), "rate cap")
}

// Recovery traffic (retries of dead letters) never starves fresh records under the one cap: a
// fresh request that arrives behind a queue of recovery requests goes next.
func TestFreshRequestsGoAheadOfRecovery(t *testing.T) {
	g := newGate(gateOptions{Rate: 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, g.Admit(ctx)) // spend the burst of 2
	require.NoError(t, g.Admit(ctx))
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ { // one second of recovery requests queue up
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if g.Admit(AsRecovery(WithCaller(ctx, fmt.Sprintf("retry-%d", i)))) == nil {
				mu.Lock()
				order = append(order, "retry")
				mu.Unlock()
			}
		}(i)
	}
	time.Sleep(150 * time.Millisecond)
	start := time.Now()
	require.NoError(t, g.Admit(WithCaller(ctx, "fresh")))
	waited := time.Since(start)
	mu.Lock()
	before := len(order)
	mu.Unlock()
	wg.Wait()
	require.LessOrEqual(t, before, 5, "the fresh request went ahead of the queued recovery requests")
	require.Less(t, waited, 400*time.Millisecond)
	require.Len(t, order, 20, "recovery requests go too, after it")
}

// A request that waits for the cap behind others is refused early enough to tell its caller so
// (not sent, not the record's failure), never left to run into the caller's own deadline — even
// when fresh requests keep going ahead of it.
func TestWaitForTheCapEndsBeforeTheCallersDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":1,"events":[]}`))
	}))
	defer srv.Close()
	gov := newGate(gateOptions{Rate: 2}) // a request every 0.5 s, burst 1
	c, err := tcs.New(tcs.Options{BaseURL: srv.URL, Token: tcs.StaticToken("t"), Timeout: time.Second, Gate: gov})
	require.NoError(t, err)
	_, err = c.GetPlacement(context.Background(), 1) // spends the burst
	require.NoError(t, err)
	fresh := func() { _, _ = c.GetPlacement(context.Background(), 2) }
	go fresh() // takes the next slot
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(AsRecovery(context.Background()), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := c.GetPlacement(ctx, 3); done <- err }()
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 10; i++ { // five seconds of fresh requests go ahead of it
		go fresh()
	}
	err = <-done
	require.Equal(t, tcs.Refused, tcs.Classify(err), "not sent: %v", err)
	require.Less(t, time.Since(start), 2500*time.Millisecond, "refused while the caller still has time to say so")
}
