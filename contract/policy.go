package contract

import "time"

// The failure policy: what a TCS answer means for a record. The TCS client classifies an answer
// (tcs.ClassOfStatus), the activities turn the class into one of these error types, and the
// workflows act on the type as this table says. Getting this wrong was the incident: a
// momentary outage was treated like a bad message.
//
//	TCS answer                        error type     retried              spends the budget   dead-letters
//	2xx                               (none)         -                    -                   -
//	no answer, timeout, 5xx, 429,
//	an unlisted 4xx                   TCSTransient   yes, with backoff    yes                 when the budget is spent (after a look at TCS)
//	401, 403                          TCSConfig      yes, without end     no                  never
//	400, 404, 409, 422                TCSPermanent   no                   -                   at once
//	not sent (outage mode, a hold,
//	  the cap's queue too long)       TCSOutage      when TCS is back     no                  never
//
// These names are in recorded histories: they never change.
const (
	ErrTransient = "TCSTransient"
	ErrConfig    = "TCSConfig"
	ErrPermanent = "TCSPermanent"
	ErrOutage    = "TCSOutage"
)

// NonRetryableErrorTypes are the error types the update activity's retry policy hands straight
// back to the workflow (which dead-letters, or waits without spending the budget).
var NonRetryableErrorTypes = []string{ErrPermanent, ErrConfig}

// CapQueueWait is how long a TCS call may wait its turn at the rate cap, beyond the attempt
// timeout, before it is refused as not sent: a backlog drains in order rather than being sent away.
const CapQueueWait = 2 * time.Minute

// OutageWaitMax bounds a record's wait while TCS is unavailable for everyone or held: a worker
// wakes the records it refused when TCS takes requests again, this is the fallback.
const OutageWaitMax = time.Minute

// Backoff is the wait before the n-th retry (from 0) under the captured settings.
func Backoff(s RetrySettings, n int) time.Duration {
	d := s.InitialInterval
	for i := 0; i < n && d < s.MaximumInterval; i++ {
		d = time.Duration(float64(d) * s.BackoffCoefficient)
	}
	return min(d, s.MaximumInterval)
}

// WaitedBeyond is the part of an update activity's elapsed time that cannot have been the
// record's own, after attempts failed attempts (the last took took; TCS asked for delay before
// the next; inFlight: one more attempt was running when the activity ended): elapsed minus the
// most the attempts and the backoff between them can have taken, every earlier attempt (and one
// in flight) counted at the attempt timeout and the pending backoff in full. The budget counts a
// record's attempts and backoff, not time its retries waited for a worker.
func WaitedBeyond(s RetrySettings, attemptTimeout time.Duration, attempts int, took, delay time.Duration, inFlight bool,
	elapsed time.Duration) time.Duration {
	own := MostOwn(s, attemptTimeout, attempts-1) + took + max(Backoff(s, attempts-1), delay)
	if inFlight {
		own += attemptTimeout
	}
	return max(elapsed-own, 0)
}

// MostOwn is the most n attempts, each followed by its backoff, can have taken: the record's own
// time, every attempt counted at the attempt timeout.
func MostOwn(s RetrySettings, attemptTimeout time.Duration, n int) time.Duration {
	own := time.Duration(0)
	for i := 0; i < n; i++ {
		own += attemptTimeout + Backoff(s, i)
	}
	return own
}
