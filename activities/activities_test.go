package activities_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tis-writeback/writeback/activities"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/logging"
	"github.com/tis-writeback/writeback/tcs"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

const secret = "s3cr3t-token-never-logged"

type fixture struct {
	t    *testing.T
	sim  *sim.Server
	acts *activities.Activities
	logs *syncBuffer
	env  *testsuite.TestActivityEnvironment
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	srv, err := sim.Start(sim.Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Token: secret, Placements: 1000, Seed: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	client, err := tcs.New(tcs.Options{BaseURL: srv.URL(), Token: tcs.StaticToken(token), Timeout: 500 * time.Millisecond})
	require.NoError(t, err)
	logs := &syncBuffer{}
	acts := activities.New(client, logging.New(logs, nil), contract.DefaultRetrySettings())
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &fixture{t: t, sim: srv, acts: acts, logs: logs, env: env}
}

func (f *fixture) faults(fl sim.Faults) { f.sim.Store.SetFaults(fl) }

func placementMsg(id int64) contract.PlacementExported {
	return contract.PlacementExported{PlacementID: id, PositionNumber: 25713154, PositionID: 6957985,
		Filename: "DE_SEV_APP_20210728_00003779.DAT", ExportedAt: time.Date(2021, 7, 28, 13, 10, 0, 0, time.UTC)}
}

var scanMsg = contract.ScanCompleted{ScanID: "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "CLEAN",
	FileName: "referral.pdf", CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}

func (f *fixture) updatePlacement(m contract.PlacementExported) (contract.UpdateResult, error) {
	v, err := f.env.ExecuteActivity(f.acts.UpdatePlacement, m)
	var res contract.UpdateResult
	if err == nil {
		require.NoError(f.t, v.Get(&res))
	}
	return res, err
}

// class asserts err is an ApplicationError of the given type and retryability.
func class(t *testing.T, err error, errType string, retryable bool) *temporal.ApplicationError {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want an ApplicationError, got %v", err)
	require.Equal(t, errType, appErr.Type(), appErr.Error())
	require.Equal(t, !retryable, appErr.NonRetryable(), appErr.Error())
	require.NotContains(t, err.Error(), secret)
	return appErr
}

func TestUpdatePlacementWritesOneRow(t *testing.T) {
	f := newFixture(t, secret)
	m := placementMsg(42)
	res, err := f.updatePlacement(m)
	require.NoError(t, err)
	require.False(t, res.AlreadyWritten)
	require.Equal(t, 1, f.sim.Store.ExportedCount(42, m.Filename))

	// The same update again (a retried attempt, or a new run): checked first, not written twice.
	res, err = f.updatePlacement(m)
	require.NoError(t, err)
	require.True(t, res.AlreadyWritten)
	require.Equal(t, 1, f.sim.Store.ExportedCount(42, m.Filename))
}

func TestStatusClasses(t *testing.T) {
	cases := []struct {
		status    int
		errType   string
		retryable bool
	}{
		{500, contract.ErrTransient, true},
		{502, contract.ErrTransient, true},
		{503, contract.ErrTransient, true},
		{504, contract.ErrTransient, true},
		{429, contract.ErrTransient, true},
		{401, contract.ErrConfig, false},
		{403, contract.ErrConfig, false},
		{400, contract.ErrPermanent, false},
		{404, contract.ErrPermanent, false},
		{409, contract.ErrPermanent, false},
		{422, contract.ErrPermanent, false},
	}
	for _, c := range cases {
		t.Run(http.StatusText(c.status), func(t *testing.T) {
			f := newFixture(t, secret)
			f.faults(sim.Faults{ErrorRate: 1, ErrorStatus: c.status})
			_, err := f.updatePlacement(placementMsg(7))
			appErr := class(t, err, c.errType, c.retryable)
			var d contract.FailureDetails
			require.NoError(t, appErr.Details(&d))
			require.Equal(t, c.status, d.Status)
			require.Equal(t, int32(1), d.Attempt)
			require.Equal(t, 0, f.sim.Store.ExportedCount(7, placementMsg(7).Filename))

			_, err = f.env.ExecuteActivity(f.acts.UpdateScan, scanMsg)
			class(t, err, c.errType, c.retryable)
		})
	}
}

func TestUnknownRecordsArePermanent(t *testing.T) {
	f := newFixture(t, secret)
	_, err := f.updatePlacement(placementMsg(5000)) // only 1..1000 exist
	class(t, err, contract.ErrPermanent, false)
	unknown := scanMsg
	unknown.ScanID = "f0000000-0000-4000-8000-000000000000"
	_, err = f.env.ExecuteActivity(f.acts.UpdateScan, unknown)
	class(t, err, contract.ErrPermanent, false)
}

func TestWrongTokenIsConfigNotPermanent(t *testing.T) {
	f := newFixture(t, "wrong-"+secret)
	_, err := f.updatePlacement(placementMsg(9))
	class(t, err, contract.ErrConfig, false)
	require.NotContains(t, err.Error(), "wrong-"+secret)
}

func TestOutageIsTransient(t *testing.T) {
	f := newFixture(t, secret)
	f.faults(sim.Faults{Outage: true})
	_, err := f.updatePlacement(placementMsg(11))
	appErr := class(t, err, contract.ErrTransient, true)
	require.Contains(t, appErr.Message(), "no answer from TCS")
	f.faults(sim.Faults{})
	_, err = f.updatePlacement(placementMsg(11))
	require.NoError(t, err)
	require.Equal(t, 1, f.sim.Store.ExportedCount(11, placementMsg(11).Filename))
}

func TestRetryAfterIsHonoured(t *testing.T) {
	for _, status := range []int{429, 503} {
		f := newFixture(t, secret)
		f.faults(sim.Faults{ErrorRate: 1, ErrorStatus: status, RetryAfterSeconds: 7})
		_, err := f.updatePlacement(placementMsg(12))
		appErr := class(t, err, contract.ErrTransient, true)
		require.Equal(t, 7*time.Second, appErr.NextRetryDelay(), "status %d", status)
	}
}

func TestLostAnswerWritesExactlyOneRow(t *testing.T) {
	f := newFixture(t, secret)
	m := placementMsg(13)
	// The POST is processed, then never answered: the client times out though the row exists.
	f.faults(sim.Faults{TimeoutRate: 1, Only: "/esr-exported"})
	_, err := f.updatePlacement(m)
	appErr := class(t, err, contract.ErrTransient, true)
	require.Contains(t, appErr.Message(), "timed out")
	require.Equal(t, 1, f.sim.Store.ExportedCount(13, m.Filename), "the write happened")

	f.faults(sim.Faults{})
	res, err := f.updatePlacement(m)
	require.NoError(t, err)
	require.True(t, res.AlreadyWritten)
	require.Equal(t, 1, f.sim.Store.ExportedCount(13, m.Filename), "exactly one row")
	require.Equal(t, 0, f.sim.Store.Stats().Duplicates)
}

func TestUpdateScan(t *testing.T) {
	f := newFixture(t, secret)
	_, err := f.env.ExecuteActivity(f.acts.UpdateScan, scanMsg)
	require.NoError(t, err)
	sc, ok := f.sim.Store.ScanRecord(scanMsg.ScanID)
	require.True(t, ok)
	require.Equal(t, "COMPLETED", sc.Status)
	require.Equal(t, "CLEAN", sc.Result)
}

func deadLetter(id int64) contract.DeadLetter {
	return contract.DeadLetter{Kind: "placement", RecordID: "42", Attempts: 3, LastError: "TCS POST ...: 422",
		DeadLetteredAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		Placement:      &contract.PlacementRef{PlacementID: id, Filename: "F.DAT"}}
}

func criticalLines(t *testing.T, logs string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["level"] == "CRITICAL" {
			out = append(out, m)
		}
	}
	return out
}

func TestMarkPlacementFailed(t *testing.T) {
	f := newFixture(t, secret)
	v, err := f.env.ExecuteActivity(f.acts.MarkPlacementFailed, deadLetter(42))
	require.NoError(t, err)
	var res contract.MarkResult
	require.NoError(t, v.Get(&res))
	require.True(t, res.Marked)
	require.Equal(t, 1, f.sim.Store.FailedCount(42, "F.DAT"))
	lines := criticalLines(t, f.logs.String())
	require.Len(t, lines, 1)
	for _, k := range []string{"kind", "recordId", "workflowId", "runId", "attempts", "lastError"} {
		require.Contains(t, lines[0], k)
	}
	require.Equal(t, "placement", lines[0]["kind"])
	require.EqualValues(t, 3, lines[0]["attempts"])
}

func TestMarkRetriedWhileTCSDownWithoutCriticalLine(t *testing.T) {
	f := newFixture(t, secret)
	f.faults(sim.Faults{Outage: true})
	_, err := f.env.ExecuteActivity(f.acts.MarkPlacementFailed, deadLetter(42))
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.False(t, appErr.NonRetryable(), "a mark that did not land is retried")
	require.Empty(t, criticalLines(t, f.logs.String()), "no CRITICAL line until the mark lands")

	f.faults(sim.Faults{ErrorRate: 1, ErrorStatus: 401})
	_, err = f.env.ExecuteActivity(f.acts.MarkPlacementFailed, deadLetter(42))
	require.True(t, errors.As(err, &appErr))
	require.False(t, appErr.NonRetryable(), "a 401 on the mark is retried too")
}

func TestMarkUnknownRecordIsLoggedAndDone(t *testing.T) {
	f := newFixture(t, secret)
	v, err := f.env.ExecuteActivity(f.acts.MarkPlacementFailed, deadLetter(99999))
	require.NoError(t, err)
	var res contract.MarkResult
	require.NoError(t, v.Get(&res))
	require.False(t, res.Marked)
	require.Contains(t, res.Note, "does not know")
	require.Len(t, criticalLines(t, f.logs.String()), 1)
}

func TestMarkScanErrored(t *testing.T) {
	f := newFixture(t, secret)
	dl := contract.DeadLetter{Kind: "scan", RecordID: scanMsg.ScanID, Attempts: 1, LastError: "x",
		DeadLetteredAt: time.Now().UTC(), Scan: &contract.ScanRef{ScanID: scanMsg.ScanID}}
	_, err := f.env.ExecuteActivity(f.acts.MarkScanErrored, dl)
	require.NoError(t, err)
	sc, _ := f.sim.Store.ScanRecord(scanMsg.ScanID)
	require.Equal(t, "ERRORED", sc.Status)
	require.Len(t, criticalLines(t, f.logs.String()), 1)
}

func TestTokenNeverInLogsOrErrors(t *testing.T) {
	f := newFixture(t, secret)
	var errs []string
	for _, fl := range []sim.Faults{{}, {Outage: true}, {ErrorRate: 1, ErrorStatus: 500}, {ErrorRate: 1, ErrorStatus: 401},
		{TimeoutRate: 1}} {
		f.faults(fl)
		if _, err := f.updatePlacement(placementMsg(77)); err != nil {
			errs = append(errs, err.Error())
		}
		if _, err := f.env.ExecuteActivity(f.acts.MarkPlacementFailed, deadLetter(77)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	require.NotEmpty(t, errs)
	require.NotContains(t, strings.Join(errs, "\n"), secret)
	require.NotContains(t, f.logs.String(), secret)
}

func TestFirstAttemptReportsOutcomesAsData(t *testing.T) {
	f := newFixture(t, secret)
	run := func(m contract.PlacementExported) contract.FirstAttempt {
		v, err := f.env.ExecuteLocalActivity(f.acts.FirstPlacementAttempt, m)
		require.NoError(t, err, "the fast path never fails: it reports")
		var fa contract.FirstAttempt
		require.NoError(t, v.Get(&fa))
		require.Equal(t, contract.DefaultRetrySettings(), fa.Settings, "it captures the worker's settings")
		return fa
	}
	fa := run(placementMsg(31))
	require.Empty(t, fa.ErrType)
	require.Equal(t, 1, f.sim.Store.ExportedCount(31, placementMsg(31).Filename))

	f.faults(sim.Faults{ErrorRate: 1, ErrorStatus: 503, RetryAfterSeconds: 9})
	fa = run(placementMsg(32))
	require.Equal(t, contract.ErrTransient, fa.ErrType)
	require.Equal(t, 9*time.Second, fa.RetryAfter)
	require.Contains(t, fa.Message, "503")

	f.faults(sim.Faults{})
	fa = run(placementMsg(5000))
	require.Equal(t, contract.ErrPermanent, fa.ErrType)
	require.Contains(t, fa.Message, "404")

	v, err := f.env.ExecuteLocalActivity(f.acts.FirstScanAttempt, scanMsg)
	require.NoError(t, err)
	var sfa contract.FirstAttempt
	require.NoError(t, v.Get(&sfa))
	require.Empty(t, sfa.ErrType)
}

// A mark that finds TCS holding the record as this record writes it marks nothing and logs no
// CRITICAL line: the record is not a dead letter. A poison message's dead letter is marked all the
// same (what it says cannot be trusted), and a scan COMPLETED with another result is not overwritten
// but is this record's dead letter.
func TestMarkFindsTheRecordHeld(t *testing.T) {
	f := newFixture(t, secret)
	m := placementMsg(42)
	m.Filename = "F.DAT"
	_, err := f.updatePlacement(m)
	require.NoError(t, err)
	mark := func(act any, dl contract.DeadLetter) contract.MarkResult {
		v, err := f.env.ExecuteActivity(act, dl)
		require.NoError(t, err)
		var res contract.MarkResult
		require.NoError(t, v.Get(&res))
		return res
	}
	res := mark(f.acts.MarkPlacementFailed, deadLetter(42))
	require.True(t, res.Held, res.Note)
	require.False(t, res.Marked)
	require.Zero(t, f.sim.Store.FailedCount(42, "F.DAT"))
	require.Empty(t, criticalLines(t, f.logs.String()))

	poison := deadLetter(42)
	poison.Group = contract.PoisonGroupPrefix + "exportedAt"
	res = mark(f.acts.MarkPlacementFailed, poison)
	require.False(t, res.Held)
	require.True(t, res.Marked)
	require.Len(t, criticalLines(t, f.logs.String()), 1)

	_, err = f.env.ExecuteActivity(f.acts.UpdateScan, scanMsg)
	require.NoError(t, err)
	dl := contract.DeadLetter{Kind: "scan", RecordID: scanMsg.ScanID, Attempts: 1, LastError: "x", Group: contract.GroupBudgetSpent,
		DeadLetteredAt: time.Now().UTC(), Scan: &contract.ScanRef{ScanID: scanMsg.ScanID, Result: scanMsg.Result}}
	res = mark(f.acts.MarkScanErrored, dl)
	require.True(t, res.Held, res.Note)
	require.Len(t, criticalLines(t, f.logs.String()), 1, "no second CRITICAL line")

	dl.Scan.Result = "INFECTED"
	res = mark(f.acts.MarkScanErrored, dl)
	require.False(t, res.Held)
	require.Contains(t, res.Note, "not overwritten")
	sc, _ := f.sim.Store.ScanRecord(scanMsg.ScanID)
	require.Equal(t, "COMPLETED", sc.Status)
	require.Len(t, criticalLines(t, f.logs.String()), 2)
}
