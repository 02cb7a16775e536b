package contract_test

import (
	"testing"
	"time"

	"github.com/tis-writeback/writeback/contract"
)

// The budget counts a record's attempts and the backoff between them, not the time its retry
// waited in the queue for a worker (the workflow testsuite cannot queue a task, so the maths is
// tested here and the whole path by `make bench` (protect)).
func TestWaitedBeyond(t *testing.T) {
	s := contract.DefaultRetrySettings() // 1 s, ×2; attempt timeout 30 s
	cases := []struct {
		name               string
		attempts           int
		took, delay, spent time.Duration
		inFlight           bool
		want               time.Duration
	}{
		// Seven quick 503s at 0, 1, 3, 7, 15, 31, 63 s; the eighth (127 s) is past a 100 s budget.
		{"own failures only", 7, 50 * time.Millisecond, 0, 63 * time.Second, false, 0},
		// One 503 after 2 s, then the retry (due 1 s later) waited 90 s behind a backlog.
		{"retry queued", 1, 2 * time.Second, 0, 93 * time.Second, false, 90 * time.Second},
		// Two attempts: the first may have run up to the attempt timeout.
		{"earlier attempt at its timeout", 2, time.Second, 0, 100 * time.Second, false, 100*time.Second - 30*time.Second - time.Second - 3*time.Second},
		// The budget ran out while the second attempt was running: its time is the record's.
		{"attempt in flight", 1, 2 * time.Second, 0, 20 * time.Second, true, 0},
		// TCS asked for 60 s (Retry-After): that wait is the record's.
		{"retry-after", 1, 0, time.Minute, time.Minute, false, 0},
	}
	for _, c := range cases {
		if got := contract.WaitedBeyond(s, 30*time.Second, c.attempts, c.took, c.delay, c.inFlight, c.spent); got != c.want {
			t.Errorf("%s: WaitedBeyond = %s, want %s", c.name, got, c.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	s := contract.DefaultRetrySettings()
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := contract.Backoff(s, n); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, want)
		}
	}
	if got := contract.Backoff(s, 40); got != s.MaximumInterval {
		t.Errorf("Backoff(40) = %s, want the maximum %s", got, s.MaximumInterval)
	}
}
