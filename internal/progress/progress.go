// Package progress prints the progress of long commands on standard error: a redrawn line on a
// terminal, a line every few seconds otherwise (CI logs).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bar counts work done towards a total.
type Bar struct {
	what     string
	total    int64
	done     atomic.Int64
	w        io.Writer
	tty      bool
	start    time.Time
	stop     chan struct{}
	finished sync.WaitGroup
}

// Start begins showing progress; total may be 0 when unknown.
func Start(what string, total int) *Bar {
	return StartTo(os.Stderr, what, total)
}

// StartTo shows progress on w.
func StartTo(w io.Writer, what string, total int) *Bar {
	b := &Bar{what: what, total: int64(total), w: w, tty: isTerminal(w), start: time.Now(), stop: make(chan struct{})}
	b.finished.Add(1)
	go b.loop()
	return b
}

// Add counts n more done.
func (b *Bar) Add(n int) { b.done.Add(int64(n)) }

// Count is the work counted done so far.
func (b *Bar) Count() int64 { return b.done.Load() }

// Done stops and prints the final line.
func (b *Bar) Done() {
	close(b.stop)
	b.finished.Wait()
	b.print(true)
}

func (b *Bar) loop() {
	defer b.finished.Done()
	every := 5 * time.Second
	if b.tty {
		every = 200 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.print(false)
		}
	}
}

func (b *Bar) print(final bool) {
	done := b.done.Load()
	secs := time.Since(b.start).Seconds()
	rate := float64(done) / max(secs, 1e-9)
	var line string
	if b.total > 0 {
		frac := float64(done) / float64(b.total)
		width := 30
		filled := min(width, int(frac*float64(width)))
		line = fmt.Sprintf("%s [%s%s] %d/%d %3.0f%% %.0f/s", b.what, strings.Repeat("#", filled),
			strings.Repeat(".", width-filled), done, b.total, frac*100, rate)
	} else {
		line = fmt.Sprintf("%s %d %.0f/s", b.what, done, rate)
	}
	switch {
	case b.tty && final:
		fmt.Fprintf(b.w, "\r%s in %.1fs\n", line, secs)
	case b.tty:
		fmt.Fprintf(b.w, "\r%s", line)
	case final:
		fmt.Fprintf(b.w, "%s in %.1fs\n", line, secs)
	default:
		fmt.Fprintln(b.w, line)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
