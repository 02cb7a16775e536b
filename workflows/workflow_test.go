package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/activities"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/workflows"
)

var (
	placement = contract.PlacementExported{PlacementID: 1708036, PositionNumber: 25713154, PositionID: 6957985,
		Filename: "DE_SEV_APP_20210728_00003779.DAT", ExportedAt: time.Date(2021, 7, 28, 13, 10, 0, 0, time.UTC)}
	scan = contract.ScanCompleted{ScanID: "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "SANITISED",
		FileName: "referral.pdf", CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
)

type WorkflowSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env      *testsuite.TestWorkflowEnvironment
	settings contract.RetrySettings
	// saState is the last WritebackState the workflow upserted; saAll every value of every key.
	saState string
	saAll   map[string][]string
	marks   int
}

func TestWorkflows(t *testing.T) { suite.Run(t, new(WorkflowSuite)) }

func (s *WorkflowSuite) SetupTest() {
	s.settings = contract.DefaultRetrySettings()
	s.env = s.NewTestWorkflowEnvironment()
	a := &activities.Activities{Settings: s.settings}
	workflows.Register(s.env, a)
	s.watchSearchAttributes()
}

// watchSearchAttributes records every upsert of s.env.
func (s *WorkflowSuite) watchSearchAttributes() {
	s.saState, s.saAll, s.marks = "", map[string][]string{}, 0
	s.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		for _, key := range []temporal.SearchAttributeKeyKeyword{contract.KindKey, contract.RecordIDKey, contract.StateKey, contract.FailureKey} {
			if v, ok := sa.GetKeyword(key); ok {
				s.saAll[key.GetName()] = append(s.saAll[key.GetName()], v)
				if key == contract.StateKey {
					s.saState = v
				}
			}
		}
	}).Return(nil)
}

func (s *WorkflowSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

// tcsErr builds the error a TCS-update activity returns for a class.
func tcsErr(errType string, status int, attempt int32) error {
	return temporal.NewApplicationErrorWithOptions("TCS answered "+http(status), errType, temporal.ApplicationErrorOptions{
		NonRetryable: errType != contract.ErrTransient,
		Details:      []any{contract.FailureDetails{Attempt: attempt, Status: status}},
	})
}

func http(status int) string {
	return map[int]string{401: "401", 404: "404", 422: "422", 503: "503"}[status]
}

func (s *WorkflowSuite) query() contract.Status {
	v, err := s.env.QueryWorkflow(contract.QueryState)
	s.Require().NoError(err)
	var st contract.Status
	s.Require().NoError(v.Get(&st))
	return st
}

func (s *WorkflowSuite) result() contract.Status {
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var st contract.Status
	s.Require().NoError(s.env.GetWorkflowResult(&st))
	return st
}

func (s *WorkflowSuite) expectMark(name string, times int) {
	s.env.OnActivity(name, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, dl contract.DeadLetter) (contract.MarkResult, error) {
			s.marks++
			return contract.MarkResult{Marked: true}, nil
		}).Times(times)
}

// recoveryWrites mocks the regular TCS-update activity of a recovery phase to return these
// results in turn, checking that each runs at RecoveryPriority (behind fresh records).
func (s *WorkflowSuite) recoveryWrites(name string, results ...contract.UpdateResult) {
	if len(results) == 0 {
		return
	}
	priorities := &priorityRecorder{}
	s.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{priorities}})
	calls := 0
	check := func(ctx context.Context) (contract.UpdateResult, error) {
		// (The testsuite does not hand the priority to the activity; the interceptor saw it.)
		s.Equal(contract.RecoveryPriority, priorities.of[activity.GetInfo(ctx).ActivityType.Name], "recovery runs behind fresh records")
		calls++
		return results[min(calls, len(results))-1], nil
	}
	if name == contract.UpdateScanName {
		s.env.OnActivity(name, mock.Anything, mock.Anything).Return(
			func(ctx context.Context, _ contract.ScanCompleted) (contract.UpdateResult, error) {
				return check(ctx)
			}).Times(len(results))
		return
	}
	s.env.OnActivity(name, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ contract.PlacementExported) (contract.UpdateResult, error) {
			return check(ctx)
		}).Times(len(results))
}

// priorityRecorder notes the priority key each activity type is scheduled with.
type priorityRecorder struct {
	interceptor.WorkerInterceptorBase
	of map[string]int
}

func (p *priorityRecorder) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &priorityInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, p: p}
}

type priorityInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	p *priorityRecorder
}

func (i *priorityInbound) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&priorityOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, p: i.p})
}

type priorityOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	p *priorityRecorder
}

func (o *priorityOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...interface{}) workflow.Future {
	if o.p.of == nil {
		o.p.of = map[string]int{}
	}
	o.p.of[activityType] = workflow.GetActivityOptions(ctx).Priority.PriorityKey
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

// firsts mocks the fast-path local activity of name to return these outcomes in turn (the last
// one again after that), with the given settings captured. The mock has the activity's exact
// signature: the testsuite ignores one that does not match.
func (s *WorkflowSuite) firsts(env *testsuite.TestWorkflowEnvironment, name string, settings contract.RetrySettings, outcomes ...contract.FirstAttempt) *int {
	calls := new(int)
	next := func() (contract.FirstAttempt, error) {
		fa := outcomes[min(*calls, len(outcomes)-1)]
		*calls++
		fa.Settings = settings
		return fa, nil
	}
	if name == contract.FirstScanAttemptName {
		env.OnActivity(name, mock.Anything, mock.Anything).Return(func(context.Context, contract.ScanCompleted) (contract.FirstAttempt, error) { return next() })
	} else {
		env.OnActivity(name, mock.Anything, mock.Anything).Return(func(context.Context, contract.PlacementExported) (contract.FirstAttempt, error) { return next() })
	}
	return calls
}

var (
	fastOK        = contract.FirstAttempt{Result: contract.UpdateResult{Attempt: 1}}
	fastTransient = contract.FirstAttempt{ErrType: contract.ErrTransient, Message: "TCS GET /api/placements/1708036: 503"}
	fastConfig    = contract.FirstAttempt{ErrType: contract.ErrConfig, Message: "TCS GET /api/placements/1708036: 401"}
	fast404       = contract.FirstAttempt{ErrType: contract.ErrPermanent, Message: "TCS GET /api/placements/1708036: 404 not found"}
)

func (s *WorkflowSuite) TestSuccessFirstTry() {
	// The fast path: one local activity, no activity task.
	calls := s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fastOK)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(contract.Status{State: contract.StateCompleted, Attempts: 1}, st)
	s.Equal(contract.StateCompleted, s.query().State)
	s.Equal([]string{"placement"}, s.saAll["WritebackKind"])
	s.Equal([]string{"1708036"}, s.saAll["WritebackRecordId"])
	s.Equal([]string{contract.StateUpdating, contract.StateCompleted}, s.saAll["WritebackState"])
	s.Equal(1, *calls)
}

func (s *WorkflowSuite) TestTransientFailuresThenSuccess() {
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fastTransient)
	calls := 0
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			calls++
			if calls < 4 {
				return contract.UpdateResult{}, tcsErr(contract.ErrTransient, 503, int32(calls))
			}
			return contract.UpdateResult{Attempt: int32(calls)}, nil
		})
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(4, calls, "the retry policy retries transient failures")
	s.Equal(contract.StateCompleted, st.State)
	s.Equal(5, st.Attempts, "the fast attempt and four activity attempts")
	s.Equal(0, s.marks)
}

func (s *WorkflowSuite) TestAuthFailureForDaysNeverDeadLetters() {
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fastConfig)
	calls := 0
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			calls++
			if calls <= 700 { // 700 × 5 min cap ≈ 58 h of 401, far beyond the 24 h budget
				return contract.UpdateResult{}, tcsErr(contract.ErrConfig, 401, 1)
			}
			return contract.UpdateResult{Attempt: 1}, nil
		})
	var mid contract.Status
	s.env.RegisterDelayedCallback(func() { mid = s.query() }, 48*time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal(contract.StateUpdating, mid.State, "after 48 h of 401 the record is still being updated")
	s.Contains(mid.LastError, "401")
	s.Greater(mid.Attempts, 100)
	st := s.result()
	s.Equal(contract.StateCompleted, st.State)
	s.Equal(702, st.Attempts)
	s.Equal(0, s.marks, "a 401 never dead-letters a record")
	s.NotContains(s.saAll["WritebackState"], contract.StateDeadLettered)
}

func (s *WorkflowSuite) TestPermanentErrorDeadLettersAtOnceThenParks() {
	for _, status := range []int{404, 422} {
		s.Run(http(status), func() {
			s.SetupTest()
			s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings,
				contract.FirstAttempt{ErrType: contract.ErrPermanent, Message: "TCS answered " + http(status)})
			var dl contract.DeadLetter
			s.env.OnActivity(contract.MarkPlacementFailedName, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, in contract.DeadLetter) (contract.MarkResult, error) {
					dl = in
					return contract.MarkResult{Marked: true}, nil
				}).Once()
			var parked contract.Status
			s.env.RegisterDelayedCallback(func() { parked = s.query() }, time.Hour)
			s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)

			s.Equal(contract.StateDeadLettered, parked.State)
			s.Equal(1, parked.Attempts)
			s.NotEmpty(parked.DeadLetteredAt)
			s.Contains(parked.LastError, http(status))
			s.Equal("placement", dl.Kind)
			s.Equal("1708036", dl.RecordID)
			s.Equal(&contract.PlacementRef{PlacementID: placement.PlacementID, Filename: placement.Filename}, dl.Placement)
			// No signal for the parking period: the workflow completes as DeadLettered.
			st := s.result()
			s.Equal(contract.StateDeadLettered, st.State)
			s.Equal(contract.StateDeadLettered, s.saState)
		})
	}
}

func (s *WorkflowSuite) TestBudgetSpentDeadLetters() {
	// A 100 s budget: attempts after 0, 1, 3, 7, 15, 31, 63 s; the next (127 s) is past the budget.
	s.env = s.NewTestWorkflowEnvironment()
	settings := contract.DefaultRetrySettings()
	settings.Budget = 100 * time.Second
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.firsts(s.env, contract.FirstPlacementAttemptName, settings, fastTransient)
	calls := 0
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			calls++
			return contract.UpdateResult{}, tcsErr(contract.ErrTransient, 503, int32(calls))
		})
	s.env.OnActivity(contract.CheckPlacementWrittenName, mock.Anything, mock.Anything).Return(false, nil).Once()
	s.expectMark(contract.MarkPlacementFailedName, 1)
	var parked contract.Status
	s.env.RegisterDelayedCallback(func() { parked = s.query() }, time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal(7, calls)
	s.Equal(contract.StateDeadLettered, parked.State)
	s.Equal(8, parked.Attempts, "the fast attempt and seven activity attempts")
	s.Contains(parked.LastError, "retry budget of 1m40s spent")
	s.Contains(parked.LastError, "503")
	s.Equal(1, s.marks)
}

func (s *WorkflowSuite) deadLetterThen(signal string, payload any, after []contract.UpdateResult) {
	// 404 first; after the retry signal, the recovery phase writes at RecoveryPriority (no fast path).
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fast404)
	s.recoveryWrites(contract.UpdatePlacementName, after...)
	s.expectMark(contract.MarkPlacementFailedName, 1)
	s.env.RegisterDelayedCallback(func() {
		s.Equal(contract.StateDeadLettered, s.query().State)
		s.env.SignalWorkflow(signal, payload)
	}, 2*time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
}

func (s *WorkflowSuite) TestRetryAfterDeadLetterCompletes() {
	s.deadLetterThen(contract.SignalRetry, contract.SignalPayload{Reason: "placement created in TCS", By: "ops"},
		[]contract.UpdateResult{{Attempt: 1}})
	st := s.result()
	s.Equal(contract.StateCompleted, st.State)
	s.Equal(1, st.Retries)
	s.Equal(2, st.Attempts, "attempts count over the workflow's whole life")
	s.NotEmpty(st.DeadLetteredAt, "the last dead-lettering stays visible")
	s.Equal([]string{contract.StateUpdating, contract.StateDeadLettered, contract.StateUpdating, contract.StateCompleted},
		s.saAll["WritebackState"])
}

func (s *WorkflowSuite) TestRetryWithoutPayload() {
	s.deadLetterThen(contract.SignalRetry, nil, []contract.UpdateResult{{Attempt: 1}})
	s.Equal(contract.StateCompleted, s.result().State)
}

func (s *WorkflowSuite) TestAbandon() {
	s.deadLetterThen(contract.SignalAbandon, contract.SignalPayload{Reason: "placement deleted", By: "ops"}, nil)
	st := s.result()
	s.Equal(contract.StateAbandoned, st.State)
	s.Equal(0, st.Retries)
	s.Equal(contract.StateAbandoned, s.saState)
}

func (s *WorkflowSuite) TestSignalsWhileUpdatingAreIgnored() {
	firsts := s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fastConfig)
	calls := 0
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			calls++
			if calls <= 3 {
				return contract.UpdateResult{}, tcsErr(contract.ErrConfig, 401, 1)
			}
			return contract.UpdateResult{}, tcsErr(contract.ErrPermanent, 404, 1)
		})
	s.expectMark(contract.MarkPlacementFailedName, 1)
	// Sent while Updating (during the 401 waits): neither may act on the later dead letter.
	s.env.RegisterDelayedCallback(func() {
		s.Equal(contract.StateUpdating, s.query().State)
		s.env.SignalWorkflow(contract.SignalRetry, contract.SignalPayload{Reason: "too early"})
		s.env.SignalWorkflow(contract.SignalAbandon, nil)
	}, 1500*time.Millisecond)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(4, calls)
	s.Equal(1, *firsts, "the early retry did not start another update phase")
	s.Equal(contract.StateDeadLettered, st.State, "parked until the parking period ended")
	s.Equal(0, st.Retries)
}

func (s *WorkflowSuite) TestDeadLetterMarkRetriedWhileTCSDown() {
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fast404)
	calls := 0
	s.env.OnActivity(contract.MarkPlacementFailedName, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, dl contract.DeadLetter) (contract.MarkResult, error) {
			calls++
			if calls < 6 {
				return contract.MarkResult{}, temporal.NewApplicationError("TCS down", "transient")
			}
			return contract.MarkResult{Marked: true}, nil
		})
	var during contract.Status
	s.env.RegisterDelayedCallback(func() { during = s.query() }, 3*time.Second)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal(6, calls)
	s.Equal(contract.StateUpdating, during.State, "not DeadLettered until the mark landed")
	s.Equal(contract.StateDeadLettered, s.result().State)
}

func (s *WorkflowSuite) TestScanCompletes() {
	s.firsts(s.env, contract.FirstScanAttemptName, s.settings, fastOK)
	s.env.ExecuteWorkflow(contract.ScanWorkflowType, scan)
	s.Equal(contract.StateCompleted, s.result().State)
	s.Equal([]string{"scan"}, s.saAll["WritebackKind"])
	s.Equal([]string{scan.ScanID}, s.saAll["WritebackRecordId"])
}

func (s *WorkflowSuite) TestScanDeadLettersAndAbandons() {
	s.firsts(s.env, contract.FirstScanAttemptName, s.settings, fast404)
	var dl contract.DeadLetter
	s.env.OnActivity(contract.MarkScanErroredName, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in contract.DeadLetter) (contract.MarkResult, error) {
			dl = in
			return contract.MarkResult{}, nil
		}).Once()
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(contract.SignalAbandon, nil) }, time.Hour)
	s.env.ExecuteWorkflow(contract.ScanWorkflowType, scan)
	s.Equal(contract.StateAbandoned, s.result().State)
	s.Equal(&contract.ScanRef{ScanID: scan.ScanID, Result: scan.Result}, dl.Scan)
}

// The mark finds TCS holding the record as written (a lost answer's write landed, and the look
// before could not tell): the record completes, never dead-lettered.
func (s *WorkflowSuite) TestHeldAtTheMarkCompletes() {
	s.firsts(s.env, contract.FirstScanAttemptName, s.settings, fast404)
	s.env.OnActivity(contract.MarkScanErroredName, mock.Anything, mock.Anything).Return(
		contract.MarkResult{Held: true, Note: "TCS holds the scan COMPLETED with this result"}, nil).Once()
	s.env.ExecuteWorkflow(contract.ScanWorkflowType, scan)
	st := s.result()
	s.Equal(contract.StateCompleted, st.State)
	s.Empty(st.DeadLetteredAt)
	s.NotContains(s.saAll["WritebackState"], contract.StateDeadLettered)
	s.Empty(s.saAll["WritebackFailure"])
}

func (s *WorkflowSuite) TestSettingsAreCapturedNotReadLive() {
	// The parking period in force when the record dead-letters is the one captured in history:
	// a 2 h parking period closes the dead letter after 2 h.
	s.env = s.NewTestWorkflowEnvironment()
	settings := contract.DefaultRetrySettings()
	settings.ParkingPeriod = 2 * time.Hour
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.firsts(s.env, contract.FirstPlacementAttemptName, settings, fast404)
	s.env.OnActivity(contract.MarkPlacementFailedName, mock.Anything, mock.Anything).Return(contract.MarkResult{Marked: true}, nil)
	start := s.env.Now()
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal(contract.StateDeadLettered, s.result().State)
	elapsed := s.env.Now().Sub(start)
	s.InDelta(2*time.Hour, elapsed, float64(time.Minute))
}

func TestUnknownErrorCountsAsTransient(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	workflows.Register(env, &activities.Activities{Settings: contract.RetrySettings{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, Budget: 10 * time.Minute, ParkingPeriod: time.Hour}})
	// The fast path itself fails (worker trouble): settings are captured the regular way.
	env.OnActivity(contract.FirstScanAttemptName, mock.Anything, mock.Anything).Return(contract.FirstAttempt{}, errors.New("local activity failed"))
	env.OnActivity(contract.UpdateScanName, mock.Anything, scan).Return(contract.UpdateResult{}, errors.New("boom"))
	env.OnActivity(contract.CheckScanWrittenName, mock.Anything, mock.Anything).Return(false, nil).Once()
	env.OnActivity(contract.MarkScanErroredName, mock.Anything, mock.Anything).Return(contract.MarkResult{Marked: true}, nil).Once()
	env.ExecuteWorkflow(contract.ScanWorkflowType, scan)
	require.NoError(t, env.GetWorkflowError())
	var st contract.Status
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, contract.StateDeadLettered, st.State)
	require.Contains(t, st.LastError, "boom")
}

func (s *WorkflowSuite) TestLongAuthSpellContinuesAsNewKeepingState() {
	s.env.SetContinueAsNewSuggested(true)
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fastConfig)
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).
		Return(contract.UpdateResult{}, tcsErr(contract.ErrConfig, 401, 1)).Once()
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Require().True(s.env.IsWorkflowCompleted())
	err := s.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	s.Require().True(errors.As(err, &can), "got %v", err)
	s.Equal(contract.PlacementWorkflowType, can.WorkflowType.Name)

	// The new run starts where the old one stopped: attempts and last error carried, settings not re-read.
	env := s.NewTestWorkflowEnvironment()
	workflows.Register(env, &activities.Activities{Settings: contract.RetrySettings{}}) // would be invalid if read
	env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(contract.UpdateResult{Attempt: 1}, nil).Once()
	var carry contract.Carry
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayload(can.Input.Payloads[1], &carry))
	s.Equal(2, carry.Status.Attempts, "the fast attempt and one activity")
	s.Contains(carry.Status.LastError, "401")
	env.ExecuteWorkflow(contract.PlacementWorkflowType, placement, &carry)
	s.Require().NoError(env.GetWorkflowError())
	var st contract.Status
	s.Require().NoError(env.GetWorkflowResult(&st))
	s.Equal(contract.StateCompleted, st.State)
	s.Equal(3, st.Attempts)
}

// A malformed signal (`temporal workflow signal --name retry --input '{"reason": 42}'`) is logged
// and ignored; it does not wedge the record's signal loop: an abandon after it is acted on.
func (s *WorkflowSuite) TestMalformedSignalDoesNotWedgeTheRecord() {
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fast404)
	s.expectMark(contract.MarkPlacementFailedName, 1)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalRetry, map[string]any{"reason": 42})
		s.env.SignalWorkflow(contract.SignalRetry, []int{1, 2})
	}, time.Hour)
	s.env.RegisterDelayedCallback(func() {
		s.Equal(contract.StateDeadLettered, s.query().State, "the malformed retries were not acted on")
		s.env.SignalWorkflow(contract.SignalAbandon, contract.SignalPayload{Reason: "placement deleted", By: "ops"})
	}, 2*time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(contract.StateAbandoned, st.State)
	s.Equal(0, st.Retries)
}
