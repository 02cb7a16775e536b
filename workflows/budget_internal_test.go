package workflows

import (
	"testing"
	"time"

	"github.com/tis-writeback/writeback/activities"
)

// The budget counts a record's attempts and the backoff between them, not the time its retry
// waited in the queue for a worker (the workflow testsuite cannot queue a task, so the maths is
// tested here and the whole path by `go run ./bench protect`).
func TestWaitedBeyond(t *testing.T) {
	s := activities.DefaultRetrySettings() // 1 s, ×2; attempt timeout 30 s
	cases := []struct {
		name    string
		f       failure
		elapsed time.Duration
		want    time.Duration
	}{
		// Seven quick 503s at 0, 1, 3, 7, 15, 31, 63 s; the eighth (127 s) is past a 100 s budget.
		{"own failures only", failure{attempts: 7, took: 50 * time.Millisecond}, 63 * time.Second, 0},
		// One 503 after 2 s, then the retry (due 1 s later) waited 90 s behind a backlog.
		{"retry queued", failure{attempts: 1, took: 2 * time.Second}, 93 * time.Second, 90 * time.Second},
		// Two attempts: the first may have run up to the attempt timeout.
		{"earlier attempt at its timeout", failure{attempts: 2, took: time.Second}, 100 * time.Second, 100*time.Second - 30*time.Second - time.Second - 3*time.Second},
		// TCS asked for 60 s (Retry-After): that wait is the record's.
		{"retry-after", failure{attempts: 1, delay: time.Minute}, time.Minute, 0},
	}
	for _, c := range cases {
		if got := c.f.waitedBeyond(s, 30*time.Second, c.elapsed); got != c.want {
			t.Errorf("%s: waitedBeyond = %s, want %s", c.name, got, c.want)
		}
	}
}
