package tcs_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/tcs"
)

func TestClassOfStatus(t *testing.T) {
	want := map[int]tcs.Class{200: tcs.OK, 204: tcs.OK, 400: tcs.Permanent, 401: tcs.Config, 403: tcs.Config, 404: tcs.Permanent,
		405: tcs.Transient, 408: tcs.Transient, 409: tcs.Permanent, 422: tcs.Permanent, 429: tcs.Transient, 500: tcs.Transient,
		502: tcs.Transient, 503: tcs.Transient, 504: tcs.Transient}
	for status, class := range want {
		require.Equal(t, class, tcs.ClassOfStatus(status), "status %d", status)
	}
	require.Equal(t, tcs.Transient, tcs.Classify(errors.New("anything else")))
	require.Equal(t, tcs.OK, tcs.Classify(nil))
}

func TestRetryAfterSecondsAndDate(t *testing.T) {
	for _, h := range []string{"7", time.Now().Add(7 * time.Second).UTC().Format(http.TimeFormat)} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", h)
			w.WriteHeader(http.StatusTooManyRequests)
		}))
		c, err := tcs.New(tcs.Options{BaseURL: srv.URL, Token: tcs.StaticToken("t")})
		require.NoError(t, err)
		_, err = c.GetPlacement(context.Background(), 1)
		var te *tcs.Error
		require.True(t, errors.As(err, &te))
		require.Equal(t, tcs.Transient, te.Class)
		require.InDelta(t, 7*time.Second, te.RetryAfter, float64(1500*time.Millisecond), "Retry-After %q", h)
		srv.Close()
	}
}

func TestTimeoutIsTransientAndTokenStaysOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "Bearer very-secret", r.Header.Get("Authorization"))
		time.Sleep(300 * time.Millisecond)
	}))
	defer srv.Close()
	var seen []tcs.Observation
	c, err := tcs.New(tcs.Options{BaseURL: srv.URL, Token: tcs.StaticToken("very-secret"), Timeout: 50 * time.Millisecond,
		Observe: func(o tcs.Observation) { seen = append(seen, o) }})
	require.NoError(t, err)
	err = c.PutScan(context.Background(), "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", tcs.ScanUpdate{Status: tcs.ScanCompleted})
	require.Equal(t, tcs.Transient, tcs.Classify(err))
	require.Contains(t, err.Error(), "timed out")
	require.False(t, strings.Contains(err.Error(), "very-secret"))
	require.Len(t, seen, 1)
	require.Equal(t, tcs.EndpointPutScan, seen[0].Endpoint)
	require.Equal(t, 0, seen[0].Status)
}

func TestUnreadableTokenIsConfig(t *testing.T) {
	c, err := tcs.New(tcs.Options{BaseURL: "http://127.0.0.1:1", Token: func() (string, error) { return "", errors.New("no file") }})
	require.NoError(t, err)
	_, err = c.GetScan(context.Background(), "x")
	require.Equal(t, tcs.Config, tcs.Classify(err))
}

func TestBadBaseURL(t *testing.T) {
	_, err := tcs.New(tcs.Options{BaseURL: "not a url", Token: tcs.StaticToken("t")})
	require.Error(t, err)
}

// Another TCS may render what writeback does not read differently: ids as strings, dates as arrays,
// and answer bodies writeback ignores. None of that may make a healthy answer unreadable.
func TestLenientAboutFieldsItDoesNotRead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet:
			_, _ = w.Write([]byte(`{"id":"1708036","esrEvents":[{"id":"e-1","eventDateTime":[2021,7,28,13,10],"filename":"A.DAT","status":"EXPORTED","positionId":"x"}]}`))
		default:
			_, _ = w.Write([]byte(`<html>ok</html>`))
		}
	}))
	defer srv.Close()
	c, err := tcs.New(tcs.Options{BaseURL: srv.URL, Token: tcs.StaticToken("t")})
	require.NoError(t, err)
	p, err := c.GetPlacement(context.Background(), 1708036)
	require.NoError(t, err)
	require.Equal(t, "A.DAT", p.ESREvents[0].Filename)
	require.Equal(t, tcs.StatusExported, p.ESREvents[0].Status)
	require.NoError(t, c.MarkESRExported(context.Background(), tcs.ESRExport{PlacementID: 1, Filename: "A.DAT"}, "k1"))
	require.NoError(t, c.PutScan(context.Background(), "s", tcs.ScanUpdate{Status: tcs.ScanCompleted}))
}

func TestIdempotencyKeyHeader(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Idempotency-Key"))
		w.WriteHeader(200)
	}))
	defer srv.Close()
	c, err := tcs.New(tcs.Options{BaseURL: srv.URL, Token: tcs.StaticToken("t")})
	require.NoError(t, err)
	require.NoError(t, c.MarkESRExported(context.Background(), tcs.ESRExport{PlacementID: 1, Filename: "A.DAT"}, "writeback-abc"))
	require.NoError(t, c.MarkESRExported(context.Background(), tcs.ESRExport{PlacementID: 1, Filename: "A.DAT"}, ""))
	require.Equal(t, []string{"writeback-abc", ""}, got)
}
