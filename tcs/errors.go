package tcs

import (
	"errors"
	"fmt"
	"time"
)

// Class is how a caller must treat a failed TCS call. Getting this wrong was the incident:
// a momentary outage was treated like a bad message.
type Class string

const (
	// OK: no error.
	OK Class = "ok"
	// Transient: no answer, timeout, 5xx, 429 — retry with backoff, spending the record's budget.
	Transient Class = "transient"
	// Config: 401/403 — our credentials are wrong; retry without end, never blame the record.
	Config Class = "config"
	// Permanent: 400/404/409/422 — TCS rejects this record; retrying cannot help.
	Permanent Class = "permanent"
	// Refused: not sent; the client's Gate kept it back (the cap's queue, outage mode, a hold).
	// Not the record's fault and not a TCS answer: it must not spend the record's budget.
	Refused Class = "refused"
)

// Classes lists every class, so metrics can be created at start-up.
var Classes = []Class{OK, Transient, Config, Permanent}

// ClassOfStatus classifies an HTTP status. Unlisted 4xx answers count as transient: an answer
// nobody planned for must not lose a record at once (the budget still ends in a dead letter).
func ClassOfStatus(status int) Class {
	switch {
	case status >= 200 && status < 300:
		return OK
	case status == 401 || status == 403:
		return Config
	case status == 400 || status == 404 || status == 409 || status == 422:
		return Permanent
	default:
		return Transient
	}
}

// Error is a failed TCS call. It never holds the token.
type Error struct {
	Endpoint   Endpoint
	Method     string
	Path       string
	Status     int // 0 when TCS gave no answer
	Class      Class
	RetryAfter time.Duration // from a Retry-After header on 429/503
	Msg        string
	queued     bool // Refused because the rate cap's queue was longer than the caller could wait
}

// IsQueued reports a request not sent because the rate cap's queue was longer than the caller could
// wait (not a hold, not an outage).
func IsQueued(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.queued
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("TCS %s %s: %s", e.Method, e.Path, e.Msg)
	}
	if e.Msg == "" {
		return fmt.Sprintf("TCS %s %s: %d", e.Method, e.Path, e.Status)
	}
	return fmt.Sprintf("TCS %s %s: %d %s", e.Method, e.Path, e.Status, e.Msg)
}

// Classify returns the class of any error a Client method returned.
func Classify(err error) Class {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Transient
}

// StatusOf returns the HTTP status of a failed call, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports a 404 answer.
func IsNotFound(err error) bool { return StatusOf(err) == 404 }
