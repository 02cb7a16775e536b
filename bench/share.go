package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tis-writeback/writeback/internal/proc"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

// shareEvent is a change to the workers sharing the cap, and how the drain answered it.
type shareEvent struct {
	what string
	at   time.Time
	// reached is how long after the change TCS got at least 90 % of the cap (5 s average); -1: never
	// within the phase.
	reached time.Duration
	// lowest is the lowest 5 s average of the phase's requests per second.
	lowest float64
}

// protectShare measures how the cap follows the workers that are there: a backlog drains through
// three workers while one stops gracefully (SIGTERM), one is killed (SIGKILL) and one joins, each
// phase `phase` long. TCS's requests per second come from the simulator's timeline.
func protectShare(ctx context.Context, root string, rate float64, phase time.Duration, logf func(string, ...any)) (string, error) {
	st, tc, done, err := protectStack(ctx, root, 0, rate, []string{"TCS_IDEMPOTENCY_KEY_HONOURED=true"})
	if err != nil {
		return "", err
	}
	defer done()
	n := int(rate * (4*phase + 60*time.Second).Seconds()) // a backlog that outlasts the run
	if err := startAll(ctx, tc, 1, n, "SHARE.DAT"); err != nil {
		return "", err
	}
	var ws []*proc.Process
	for i := 0; i < 3; i++ {
		w, err := st.AddWorker()
		if err != nil {
			return "", err
		}
		ws = append(ws, w)
	}
	logf("share: %d records waiting, 3 workers, TCS_RATE=%g", n, rate)
	start := time.Now()
	sleep := func() {
		select {
		case <-ctx.Done():
		case <-time.After(phase):
		}
	}
	sleep()
	events := []shareEvent{{what: "a worker stopped gracefully (SIGTERM)"}, {what: "a worker killed (SIGKILL)"}, {what: "a worker joined"}}
	events[0].at = time.Now()
	ws[2].Stop()
	sleep()
	events[1].at = time.Now()
	ws[1].Kill()
	sleep()
	events[2].at = time.Now()
	if _, err := st.AddWorker(); err != nil {
		return "", err
	}
	sleep()
	end := time.Now()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	tl := timeline(st.TCSAdmin)
	avg := func(sec int64) float64 { // requests per second over the 5 s ending at sec
		s := 0
		for k := sec - 4; k <= sec; k++ {
			s += tl[k]
		}
		return float64(s) / 5
	}
	for i := range events {
		events[i].reached, events[i].lowest = -1, rate*10
		phaseEnd := end
		if i+1 < len(events) {
			phaseEnd = events[i+1].at
		}
		// The lowest 5 s average after the change, then the first time it is back at 90 %.
		lowAt := int64(0)
		for sec := events[i].at.Unix() + 1; sec < phaseEnd.Unix(); sec++ {
			if a := avg(sec); a < events[i].lowest {
				events[i].lowest, lowAt = a, sec
			}
		}
		if events[i].lowest >= 0.9*rate {
			events[i].reached = 0
		}
		for sec := lowAt; events[i].reached < 0 && sec > 0 && sec < phaseEnd.Unix(); sec++ {
			if avg(sec) >= 0.9*rate {
				events[i].reached = time.Unix(sec, 0).Sub(events[i].at).Round(time.Second)
			}
		}
		logf("share: %s: 90%% of the cap after %s", events[i].what, events[i].reached)
	}
	steady := 0.0
	for sec := start.Unix() + int64(phase.Seconds()/2); sec < events[0].at.Unix(); sec++ {
		steady += float64(tl[sec])
	}
	steady /= phase.Seconds() / 2
	peak := sim.MaxRate(tl, 10)
	out := fmt.Sprintf("| cap follows the workers | 3 worker processes, TCS_RATE=%g, a backlog of %d; phases of %s | before: %.1f requests/s; ≥ 90 %% of the cap (5 s average) again",
		rate, n, phase, steady)
	for i, e := range events {
		sep := ","
		if i == len(events)-1 {
			sep = ";"
		}
		r := "never in the phase"
		switch {
		case e.reached == 0:
			r = fmt.Sprintf("throughout (lowest %.1f/s)", e.lowest)
		case e.reached > 0:
			r = fmt.Sprintf("after %s (lowest %.1f/s)", e.reached, e.lowest)
		}
		out += fmt.Sprintf(" %s when %s%s", r, e.what, sep)
	}
	out += fmt.Sprintf(" peak %.1f requests/s over any 10 s window (goal ≤ %.0f) |", peak, rate*1.1)
	return out, nil
}
