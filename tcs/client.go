// Package tcs is a client of the TCS REST API (docs/contract.md, The TCS API writeback uses). It
// knows nothing of Temporal: it sends requests, and classifies every answer into the failure
// classes the callers act on.
package tcs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Placement is what GET /api/placements/{id} returns. Only the fields writeback reads are typed:
// another TCS implementation may render the rest differently (numbers as strings, dates as
// arrays), and that must not make a healthy answer unreadable.
type Placement struct {
	ID        any        `json:"id"`
	ESREvents []ESREvent `json:"esrEvents"`
}

// ESREvent is one PlacementEsrEvent row, in the order TCS lists them.
type ESREvent struct {
	ID            any    `json:"id,omitempty"`
	EventDateTime any    `json:"eventDateTime,omitempty"`
	Filename      string `json:"filename"`
	Status        string `json:"status"`
}

// Event statuses.
const (
	StatusExported = "EXPORTED"
	StatusFailed   = "FAILED"
)

// ESRExport is the body of POST /api/placements/{id}/esr-exported.
type ESRExport struct {
	PlacementID    int64     `json:"placementId"`
	PositionNumber int64     `json:"positionNumber"`
	PositionID     int64     `json:"positionId"`
	Filename       string    `json:"filename"`
	ExportedAt     time.Time `json:"exportedAt"`
}

// ESRExportFailure is the body of POST /api/placements/{id}/esr-export-failed.
type ESRExportFailure struct {
	Filename string    `json:"filename"`
	Reason   string    `json:"reason"`
	FailedAt time.Time `json:"failedAt"`
}

// Scan is what GET /api/scans/{id} returns (the fields writeback reads).
type Scan struct {
	Status string `json:"status"`
	Result string `json:"result,omitempty"`
}

// ScanUpdate is the body of PUT /api/scans/{id}: either a COMPLETED result or an ERRORED mark.
type ScanUpdate struct {
	Status      string     `json:"status"`
	Result      string     `json:"result,omitempty"`
	FileName    string     `json:"fileName,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	FailedAt    *time.Time `json:"failedAt,omitempty"`
}

// Scan statuses.
const (
	ScanCompleted = "COMPLETED"
	ScanErrored   = "ERRORED"
	ScanPending   = "PENDING"
)

// Endpoint names one TCS operation; used in errors and as a metric label.
type Endpoint string

const (
	EndpointGetPlacement    Endpoint = "get_placement"
	EndpointESRExported     Endpoint = "esr_exported"
	EndpointESRExportFailed Endpoint = "esr_export_failed"
	EndpointPutScan         Endpoint = "put_scan"
	EndpointGetScan         Endpoint = "get_scan"
)

// Endpoints lists every endpoint, so metrics can be created at start-up.
var Endpoints = []Endpoint{EndpointGetPlacement, EndpointESRExported, EndpointESRExportFailed, EndpointPutScan, EndpointGetScan}

// Observation describes one finished request, for metrics.
type Observation struct {
	Endpoint Endpoint
	Status   int // 0 when no answer came
	Class    Class
	Duration time.Duration
}

// Client calls TCS. The zero value is not usable: build it with New.
type Client struct {
	base    *url.URL
	token   func() (string, error)
	http    *http.Client
	observe func(Observation)
	gate    Gate
	agent   string
}

// Gate decides whether a request goes out: a rate cap, a hold, an outage mode (package guard is
// writeback's). Admit waits for the request's turn, or refuses it with a *NotSent; Observe learns
// from each answer's class.
type Gate interface {
	Admit(ctx context.Context) error
	Observe(ctx context.Context, class Class)
}

// NotSent is a Gate's refusal: the request never left. Queued says why: the cap's queue was
// longer than the caller could wait (else a hold or an outage).
type NotSent struct {
	Why    string
	Queued bool
}

func (e *NotSent) Error() string { return e.Why }

// Options configure a Client.
type Options struct {
	// BaseURL is TCS's address, e.g. http://127.0.0.1:8081.
	BaseURL string
	// Token returns the bearer token; called per request so a rotated token file is picked up.
	Token func() (string, error)
	// Timeout bounds one request, answer included (default 10 s).
	Timeout time.Duration
	// Observe, if set, is told of every request (metrics).
	Observe func(Observation)
	// Transport overrides the HTTP transport (tests, TLS settings).
	Transport http.RoundTripper
	// Gate, if set, lets each request out or keeps it back (answered as class Refused).
	Gate Gate
	// UserAgent names the caller to TCS (its logs tell which build of the workers wrote a row).
	UserAgent string
}

// New builds a client.
func New(o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("tcs: base URL %q is not an absolute URL", o.BaseURL)
	}
	if o.Token == nil {
		return nil, errors.New("tcs: no token source")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	tr := o.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		tr = t
	}
	obs := o.Observe
	if obs == nil {
		obs = func(Observation) {}
	}
	return &Client{base: u, token: o.Token, http: &http.Client{Timeout: o.Timeout, Transport: tr}, observe: obs, gate: o.Gate, agent: o.UserAgent}, nil
}

// StaticToken is a token source for a fixed token.
func StaticToken(tok string) func() (string, error) {
	return func() (string, error) { return tok, nil }
}

// GetPlacement reads a placement with its ESR events.
func (c *Client) GetPlacement(ctx context.Context, placementID int64) (Placement, error) {
	var p Placement
	err := c.do(ctx, EndpointGetPlacement, http.MethodGet, fmt.Sprintf("/api/placements/%d", placementID), nil, &p)
	return p, err
}

// MarkESRExported inserts an EXPORTED event. idempotencyKey, if set, goes in the Idempotency-Key
// header: a TCS with that extension inserts nothing for a key it has seen; one without it inserts
// a row on every call, so callers check first. The answer's body is not read: a 2xx is all that
// matters.
func (c *Client) MarkESRExported(ctx context.Context, e ESRExport, idempotencyKey string) error {
	return c.doWithHeaders(ctx, EndpointESRExported, http.MethodPost, fmt.Sprintf("/api/placements/%d/esr-exported", e.PlacementID), e, nil,
		map[string]string{"Idempotency-Key": idempotencyKey})
}

// MarkESRExportFailed records a FAILED event for a placement whose export could not be written.
func (c *Client) MarkESRExportFailed(ctx context.Context, placementID int64, f ESRExportFailure) error {
	return c.do(ctx, EndpointESRExportFailed, http.MethodPost, fmt.Sprintf("/api/placements/%d/esr-export-failed", placementID), f, nil)
}

// PutScan writes a scan's outcome (COMPLETED or ERRORED). It is idempotent in TCS. The answer's
// body is not read.
func (c *Client) PutScan(ctx context.Context, scanID string, u ScanUpdate) error {
	return c.do(ctx, EndpointPutScan, http.MethodPut, "/api/scans/"+url.PathEscape(scanID), u, nil)
}

// GetScan reads a scan.
func (c *Client) GetScan(ctx context.Context, scanID string) (Scan, error) {
	var s Scan
	err := c.do(ctx, EndpointGetScan, http.MethodGet, "/api/scans/"+url.PathEscape(scanID), nil, &s)
	return s, err
}

type queueMeterKey struct{}

// WithQueueMeter returns a context whose requests add to *waited the time they wait for the rate
// cap before going out (or being refused): the part of a call's time that was the queue's, not the
// request's. The requests of one context must be sequential.
func WithQueueMeter(ctx context.Context, waited *time.Duration) context.Context {
	return context.WithValue(ctx, queueMeterKey{}, waited)
}

// QueueWaited is how long the requests of a WithQueueMeter context have waited for the cap so far.
func QueueWaited(ctx context.Context) time.Duration {
	if m, ok := ctx.Value(queueMeterKey{}).(*time.Duration); ok {
		return *m
	}
	return 0
}

func (c *Client) do(ctx context.Context, ep Endpoint, method, path string, in, out any) error {
	return c.doWithHeaders(ctx, ep, method, path, in, out, nil)
}

func (c *Client) doWithHeaders(ctx context.Context, ep Endpoint, method, path string, in, out any, headers map[string]string) (err error) {
	if c.gate != nil {
		// Wait for the cap only as long as leaves the request its time: a caller whose slot comes too
		// late is refused (not sent, not the record's failure) instead of timing out unanswered.
		actx := ctx
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			actx, cancel = context.WithDeadline(ctx, dl.Add(-min(c.http.Timeout, time.Until(dl)/2)))
			defer cancel()
		}
		queued := time.Now()
		gerr := c.gate.Admit(actx)
		if m, ok := ctx.Value(queueMeterKey{}).(*time.Duration); ok {
			*m += time.Since(queued)
		}
		if gerr != nil {
			var ns *NotSent
			queued := errors.As(gerr, &ns) && ns.Queued
			return &Error{Endpoint: ep, Method: method, Path: path, Class: Refused, Msg: gerr.Error(), queued: queued}
		}
	}
	start := time.Now()
	status := 0
	defer func() {
		class := Classify(err)
		c.observe(Observation{Endpoint: ep, Status: status, Class: class, Duration: time.Since(start)})
		if c.gate != nil {
			c.gate.Observe(ctx, class)
		}
	}()

	var body io.Reader
	if in != nil {
		b, merr := json.Marshal(in)
		if merr != nil {
			return &Error{Endpoint: ep, Method: method, Path: path, Class: Permanent, Msg: "cannot encode request: " + merr.Error()}
		}
		body = bytes.NewReader(b)
	}
	req, rerr := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if rerr != nil {
		return &Error{Endpoint: ep, Method: method, Path: path, Class: Permanent, Msg: rerr.Error()}
	}
	tok, terr := c.token()
	if terr != nil {
		// A token that cannot be read is a configuration fault, like a 401.
		return &Error{Endpoint: ep, Method: method, Path: path, Class: Config, Msg: "cannot read TCS token: " + terr.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if c.agent != "" {
		req.Header.Set("User-Agent", c.agent)
	}
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, herr := c.http.Do(req)
	if herr != nil {
		// No answer: refused, reset, DNS, timeout. Scrub the URL error so nothing but host and path shows.
		return &Error{Endpoint: ep, Method: method, Path: path, Class: Transient, Msg: "no answer from TCS: " + describeNetErr(herr)}
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if status >= 200 && status < 300 {
		if out != nil && len(bytes.TrimSpace(raw)) > 0 {
			if jerr := json.Unmarshal(raw, out); jerr != nil {
				// TCS answered 2xx with something we cannot read; the write may have happened,
				// and the next attempt checks before writing, so retrying is safe.
				return &Error{Endpoint: ep, Method: method, Path: path, Status: status, Class: Transient, Msg: "unreadable answer: " + jerr.Error()}
			}
		}
		return nil
	}
	e := &Error{Endpoint: ep, Method: method, Path: path, Status: status, Class: ClassOfStatus(status), Msg: snippet(raw)}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

func describeNetErr(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout") {
		return "timed out"
	}
	return err.Error()
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
