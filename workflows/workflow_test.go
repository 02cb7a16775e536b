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
	"github.com/tis-writeback/writeback/messages"
	"github.com/tis-writeback/writeback/workflows"
)

var (
	placement = messages.PlacementExported{PlacementID: 1708036, PositionNumber: 25713154, PositionID: 6957985,
		Filename: "DE_SEV_APP_20210728_00003779.DAT", ExportedAt: time.Date(2021, 7, 28, 13, 10, 0, 0, time.UTC)}
	scan = messages.ScanCompleted{ScanID: "3f1c2a9e-0b7d-4c55-9a1e-6d2f0e8b4c11", Result: "SANITISED",
		FileName: "referral.pdf", CompletedAt: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC)}
)

type WorkflowSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env      *testsuite.TestWorkflowEnvironment
	settings activities.RetrySettings
	// saState is the last WritebackState the workflow upserted; saAll every value of every key.
	saState string
	saAll   map[string][]string
	marks   int
}

func TestWorkflows(t *testing.T) { suite.Run(t, new(WorkflowSuite)) }

func (s *WorkflowSuite) SetupTest() {
	s.settings = activities.DefaultRetrySettings()
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
		for _, key := range []temporal.SearchAttributeKeyKeyword{workflows.KindKey, workflows.RecordIDKey, workflows.StateKey, workflows.FailureKey} {
			if v, ok := sa.GetKeyword(key); ok {
				s.saAll[key.GetName()] = append(s.saAll[key.GetName()], v)
				if key == workflows.StateKey {
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
		NonRetryable: errType != activities.ErrTransient,
		Details:      []any{activities.FailureDetails{Attempt: attempt, Status: status}},
	})
}

func http(status int) string {
	return map[int]string{401: "401", 404: "404", 422: "422", 503: "503"}[status]
}

func (s *WorkflowSuite) query() workflows.Status {
	v, err := s.env.QueryWorkflow(workflows.QueryState)
	s.Require().NoError(err)
	var st workflows.Status
	s.Require().NoError(v.Get(&st))
	return st
}

func (s *WorkflowSuite) result() workflows.Status {
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var st workflows.Status
	s.Require().NoError(s.env.GetWorkflowResult(&st))
	return st
}

func (s *WorkflowSuite) expectMark(name string, times int) {
	s.env.OnActivity(name, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, dl activities.DeadLetter) (activities.MarkResult, error) {
			s.marks++
			return activities.MarkResult{Marked: true}, nil
		}).Times(times)
}

// recoveryWrites mocks the regular TCS-update activity of a recovery phase to return these
// results in turn, checking that each runs at RecoveryPriority (behind fresh records).
func (s *WorkflowSuite) recoveryWrites(name string, results ...activities.UpdateResult) {
	if len(results) == 0 {
		return
	}
	priorities := &priorityRecorder{}
	s.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{priorities}})
	calls := 0
	check := func(ctx context.Context) (activities.UpdateResult, error) {
		// (The testsuite does not hand the priority to the activity; the interceptor saw it.)
		s.Equal(activities.RecoveryPriority, priorities.of[activity.GetInfo(ctx).ActivityType.Name], "recovery runs behind fresh records")
		calls++
		return results[min(calls, len(results))-1], nil
	}
	if name == activities.UpdateScanName {
		s.env.OnActivity(name, mock.Anything, mock.Anything).Return(
			func(ctx context.Context, _ messages.ScanCompleted) (activities.UpdateResult, error) {
				return check(ctx)
			}).Times(len(results))
		return
	}
	s.env.OnActivity(name, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ messages.PlacementExported) (activities.UpdateResult, error) {
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
func (s *WorkflowSuite) firsts(env *testsuite.TestWorkflowEnvironment, name string, settings activities.RetrySettings, outcomes ...activities.FirstAttempt) *int {
	calls := new(int)
	next := func() (activities.FirstAttempt, error) {
		fa := outcomes[min(*calls, len(outcomes)-1)]
		*calls++
		fa.Settings = settings
		return fa, nil
	}
	if name == activities.FirstScanAttemptName {
		env.OnActivity(name, mock.Anything, mock.Anything).Return(func(context.Context, messages.ScanCompleted) (activities.FirstAttempt, error) { return next() })
	} else {
		env.OnActivity(name, mock.Anything, mock.Anything).Return(func(context.Context, messages.PlacementExported) (activities.FirstAttempt, error) { return next() })
	}
	return calls
}

var (
	fastOK        = activities.FirstAttempt{Result: activities.UpdateResult{Attempt: 1}}
	fastTransient = activities.FirstAttempt{ErrType: activities.ErrTransient, Message: "TCS GET /api/placements/1708036: 503"}
	fastConfig    = activities.FirstAttempt{ErrType: activities.ErrConfig, Message: "TCS GET /api/placements/1708036: 401"}
	fast404       = activities.FirstAttempt{ErrType: activities.ErrPermanent, Message: "TCS GET /api/placements/1708036: 404 not found"}
)

func (s *WorkflowSuite) TestSuccessFirstTry() {
	// The fast path: one local activity, no activity task.
	calls := s.firsts(s.env, activities.FirstPlacementAttemptName, s.settings, fastOK)
	s.env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(workflows.Status{State: workflows.StateCompleted, Attempts: 1}, st)
	s.Equal(workflows.StateCompleted, s.query().State)
	s.Equal([]string{"placement"}, s.saAll["WritebackKind"])
	s.Equal([]string{"1708036"}, s.saAll["WritebackRecordId"])
	s.Equal([]string{workflows.StateUpdating, workflows.StateCompleted}, s.saAll["WritebackState"])
	s.Equal(1, *calls)
}

func (s *WorkflowSuite) TestTransientFailuresThenSuccess() {
	s.firsts(s.env, activities.FirstPlacementAttemptName, s.settings, fastTransient)
	calls := 0
	s.env.OnActivity(activities.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m messages.PlacementExported) (activities.UpdateResult, error) {
			calls++
			if calls < 4 {
				return activities.UpdateResult{}, tcsErr(activities.ErrTransient, 503, int32(calls))
			}
			return activities.UpdateResult{Attempt: int32(calls)}, nil
		})
	s.env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(4, calls, "the retry policy retries transient failures")
	s.Equal(workflows.StateCompleted, st.State)
	s.Equal(5, st.Attempts, "the fast attempt and four activity attempts")
	s.Equal(0, s.marks)
}

func (s *WorkflowSuite) TestAuthFailureForDaysNeverDeadLetters() {
	s.firsts(s.env, activities.FirstPlacementAttemptName, s.settings, fastConfig)
	calls := 0
	s.env.OnActivity(activities.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m messages.PlacementExported) (activities.UpdateResult, error) {
			calls++
			if calls <= 700 { // 700 × 5 min cap ≈ 58 h of 401, far beyond the 24 h budget
				return activities.UpdateResult{}, tcsErr(activities.ErrConfig, 401, 1)
			}
			return activities.UpdateResult{Attempt: 1}, nil
		})
	var mid workflows.Status
	s.env.RegisterDelayedCallback(func() { mid = s.query() }, 48*time.Hour)
	s.env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement)
	s.Equal(workflows.StateUpdating, mid.State, "after 48 h of 401 the record is still being updated")
	s.Contains(mid.LastError, "401")
	s.Greater(mid.Attempts, 100)
	st := s.result()
	s.Equal(workflows.StateCompleted, st.State)
	s.Equal(702, st.Attempts)
	s.Equal(0, s.marks, "a 401 never dead-letters a record")
	s.NotContains(s.saAll["WritebackState"], workflows.StateDeadLettered)
}

func (s *WorkflowSuite) TestPermanentErrorDeadLettersAtOnceThenParks() {
	for _, status := range []int{404, 422} {
		s.Run(http(status), func() {
			s.SetupTest()
			s.firsts(s.env, activities.FirstPlacementAttemptName, s.settings,
				activities.FirstAttempt{ErrType: activities.ErrPermanent, Message: "TCS answered " + http(status)})
			var dl activities.DeadLetter
			s.env.OnActivity(activities.MarkPlacementFailedName, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, in activities.DeadLetter) (activities.MarkResult, error) {
					dl = in
					return activities.MarkResult{Marked: true}, nil
				}).Once()
			var parked workflows.Status
			s.env.RegisterDelayedCallback(func() { parked = s.query() }, time.Hour)
			s.env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement)

			s.Equal(workflows.StateDeadLettered, parked.State)
			s.Equal(1, parked.Attempts)
			s.NotEmpty(parked.DeadLetteredAt)
			s.Contains(parked.LastError, http(status))
			s.Equal("placement", dl.Kind)
			s.Equal("1708036", dl.RecordID)
			s.Equal(&activities.PlacementRef{PlacementID: placement.PlacementID, Filename: placement.Filename}, dl.Placement)
			// No signal for the parking period: the workflow completes as DeadLettered.
			st := s.result()
			s.Equal(workflows.StateDeadLettered, st.State)
			s.Equal(workflows.StateDeadLettered, s.saState)
		})
	}
}

func (s *WorkflowSuite) TestBudgetSpentDeadLetters() {
	// A 100 s budget: attempts after 0, 1, 3, 7, 15, 31, 63 s; the next (127 s) is past the budget.
	s.env = s.NewTestWorkflowEnvironment()
	settings := activities.DefaultRetrySettings()
	settings.Budget = 100 * time.Second
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.firsts(s.env, activities.FirstPlacementAttemptName, settings, fastTransient)
	calls := 0
	s.env.OnActivity(activities.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m messages.PlacementExported) (activities.UpdateResult, error) {
			calls++
			return activities.UpdateResult{}, tcsErr(activities.ErrTransient, 503, int32(calls))
		})
	s.env.OnActivity(activities.CheckPlacementWrittenName, mock.Anything, mock.Anything).Return(false, nil).Once()
	s.expectMark(activities.MarkPlacementFailedName, 1)
	var parked workflows.Status
	s.env.RegisterDelayedCallback(func() { parked = s.query() }, time.Hour)
	s.env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement)
	s.Equal(7, calls)
	s.Equal(workflows.StateDeadLettered, parked.State)
	s.Equal(8, parked.Attempts, "the fast attempt and seven activity attempts")
	s.Contains(parked.LastError, "retry budget of 1m40s spent")
	s.Contains(parked.LastError, "503")
	s.Equal(1, s.marks)
}

func (s *WorkflowSuite) deadLetterThen(signal string, payload any, after []activities.UpdateResult) {
	// 404 first; after the retry signal, the recovery phase writes at RecoveryPriority (no fast path).
	s.firsts(s.env, activities.FirstPlacementAttemptName, s.settings, fast404)
	s.recoveryWrites(activities.UpdatePlacementName, after...)
	s.expectMark(activities.MarkPlacementFailedName, 1)
	s.env.RegisterDelayedCallback(func() {
		s.Equal(workflows.StateDeadLettered, s.query().State)
		s.env.SignalWorkflow(signal, payload)
	}, 2*time.Hour)
	s.env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement)
}

func (s *WorkflowSuite) TestRetryAfterDeadLetterCompletes() {
	s.deadLetterThen(workflows.SignalRetry, workflows.SignalPayload{Reason: "placement created in TCS", By: "ops"},
		[]activities.UpdateResult{{Attempt: 1}})
	st := s.result()
	s.Equal(workflows.StateCompleted, st.State)
	s.Equal(1, st.Retries)
	s.Equal(2, st.Attempts, "attempts count over the workflow's whole life")
	s.NotEmpty(st.DeadLetteredAt, "the last dead-lettering stays visible")
	s.Equal([]string{workflows.StateUpdating, workflows.StateDeadLettered, workflows.StateUpdating, workflows.StateCompleted},
		s.saAll["WritebackState"])
}

func (s *WorkflowSuite) TestRetryWithoutPayload() {
	s.deadLetterThen(workflows.SignalRetry, nil, []activities.UpdateResult{{Attempt: 1}})
	s.Equal(workflows.StateCompleted, s.result().State)
}

func (s *WorkflowSuite) TestAbandon() {
	s.deadLetterThen(workflows.SignalAbandon, workflows.SignalPayload{Reason: "placement deleted", By: "ops"}, nil)
	st := s.result()
	s.Equal(workflows.StateAbandoned, st.State)
	s.Equal(0, st.Retries)
	s.Equal(workflows.StateAbandoned, s.saState)
}

func (s *WorkflowSuite) TestSignalsWhileUpdatingAreIgnored() {
	firsts := s.firsts(s.env, activities.FirstPlacementAttemptName, s.settings, fastConfig)
	calls := 0
	s.env.OnActivity(activities.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m messages.PlacementExported) (activities.UpdateResult, error) {
			calls++
			if calls <= 3 {
				return activities.UpdateResult{}, tcsErr(activities.ErrConfig, 401, 1)
			}
			return activities.UpdateResult{}, tcsErr(activities.ErrPermanent, 404, 1)
		})
	s.expectMark(activities.MarkPlacementFailedName, 1)
	// Sent while Updating (during the 401 waits): neither may act on the later dead letter.
	s.env.RegisterDelayedCallback(func() {
		s.Equal(workflows.StateUpdating, s.query().State)
		s.env.SignalWorkflow(workflows.SignalRetry, workflows.SignalPayload{Reason: "too early"})
		s.env.SignalWorkflow(workflows.SignalAbandon, nil)
	}, 1500*time.Millisecond)
	s.env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(4, calls)
	s.Equal(1, *firsts, "the early retry did not start another update phase")
	s.Equal(workflows.StateDeadLettered, st.State, "parked until the parking period ended")
	s.Equal(0, st.Retries)
}

func (s *WorkflowSuite) TestDeadLetterMarkRetriedWhileTCSDown() {
	s.firsts(s.env, activities.FirstPlacementAttemptName, s.settings, fast404)
	calls := 0
	s.env.OnActivity(activities.MarkPlacementFailedName, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, dl activities.DeadLetter) (activities.MarkResult, error) {
			calls++
			if calls < 6 {
				return activities.MarkResult{}, temporal.NewApplicationError("TCS down", "transient")
			}
			return activities.MarkResult{Marked: true}, nil
		})
	var during workflows.Status
	s.env.RegisterDelayedCallback(func() { during = s.query() }, 3*time.Second)
	s.env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement)
	s.Equal(6, calls)
	s.Equal(workflows.StateUpdating, during.State, "not DeadLettered until the mark landed")
	s.Equal(workflows.StateDeadLettered, s.result().State)
}

func (s *WorkflowSuite) TestScanCompletes() {
	s.firsts(s.env, activities.FirstScanAttemptName, s.settings, fastOK)
	s.env.ExecuteWorkflow(workflows.ScanWorkflowType, scan)
	s.Equal(workflows.StateCompleted, s.result().State)
	s.Equal([]string{"scan"}, s.saAll["WritebackKind"])
	s.Equal([]string{scan.ScanID}, s.saAll["WritebackRecordId"])
}

func (s *WorkflowSuite) TestScanDeadLettersAndAbandons() {
	s.firsts(s.env, activities.FirstScanAttemptName, s.settings, fast404)
	var dl activities.DeadLetter
	s.env.OnActivity(activities.MarkScanErroredName, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.DeadLetter) (activities.MarkResult, error) {
			dl = in
			return activities.MarkResult{}, nil
		}).Once()
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(workflows.SignalAbandon, nil) }, time.Hour)
	s.env.ExecuteWorkflow(workflows.ScanWorkflowType, scan)
	s.Equal(workflows.StateAbandoned, s.result().State)
	s.Equal(&activities.ScanRef{ScanID: scan.ScanID}, dl.Scan)
}

func (s *WorkflowSuite) TestSettingsAreCapturedNotReadLive() {
	// The parking period in force when the record dead-letters is the one captured in history:
	// a 2 h parking period closes the dead letter after 2 h.
	s.env = s.NewTestWorkflowEnvironment()
	settings := activities.DefaultRetrySettings()
	settings.ParkingPeriod = 2 * time.Hour
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.firsts(s.env, activities.FirstPlacementAttemptName, settings, fast404)
	s.env.OnActivity(activities.MarkPlacementFailedName, mock.Anything, mock.Anything).Return(activities.MarkResult{Marked: true}, nil)
	start := s.env.Now()
	s.env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement)
	s.Equal(workflows.StateDeadLettered, s.result().State)
	elapsed := s.env.Now().Sub(start)
	s.InDelta(2*time.Hour, elapsed, float64(time.Minute))
}

func TestUnknownErrorCountsAsTransient(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	workflows.Register(env, &activities.Activities{Settings: activities.RetrySettings{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, Budget: 10 * time.Minute, ParkingPeriod: time.Hour}})
	// The fast path itself fails (worker trouble): settings are captured the regular way.
	env.OnActivity(activities.FirstScanAttemptName, mock.Anything, mock.Anything).Return(activities.FirstAttempt{}, errors.New("local activity failed"))
	env.OnActivity(activities.UpdateScanName, mock.Anything, scan).Return(activities.UpdateResult{}, errors.New("boom"))
	env.OnActivity(activities.CheckScanWrittenName, mock.Anything, mock.Anything).Return(false, nil).Once()
	env.OnActivity(activities.MarkScanErroredName, mock.Anything, mock.Anything).Return(activities.MarkResult{Marked: true}, nil).Once()
	env.ExecuteWorkflow(workflows.ScanWorkflowType, scan)
	require.NoError(t, env.GetWorkflowError())
	var st workflows.Status
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, workflows.StateDeadLettered, st.State)
	require.Contains(t, st.LastError, "boom")
}

func (s *WorkflowSuite) TestLongAuthSpellContinuesAsNewKeepingState() {
	s.env.SetContinueAsNewSuggested(true)
	s.firsts(s.env, activities.FirstPlacementAttemptName, s.settings, fastConfig)
	s.env.OnActivity(activities.UpdatePlacementName, mock.Anything, placement).
		Return(activities.UpdateResult{}, tcsErr(activities.ErrConfig, 401, 3)).Once()
	s.env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement)
	s.Require().True(s.env.IsWorkflowCompleted())
	err := s.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	s.Require().True(errors.As(err, &can), "got %v", err)
	s.Equal(workflows.PlacementWorkflowType, can.WorkflowType.Name)

	// The new run starts where the old one stopped: attempts and last error carried, settings not re-read.
	env := s.NewTestWorkflowEnvironment()
	workflows.Register(env, &activities.Activities{Settings: activities.RetrySettings{}}) // would be invalid if read
	env.OnActivity(activities.UpdatePlacementName, mock.Anything, placement).Return(activities.UpdateResult{Attempt: 1}, nil).Once()
	var carry workflows.Carry
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayload(can.Input.Payloads[1], &carry))
	s.Equal(4, carry.Status.Attempts)
	s.Contains(carry.Status.LastError, "401")
	env.ExecuteWorkflow(workflows.PlacementWorkflowType, placement, &carry)
	s.Require().NoError(env.GetWorkflowError())
	var st workflows.Status
	s.Require().NoError(env.GetWorkflowResult(&st))
	s.Equal(workflows.StateCompleted, st.State)
	s.Equal(5, st.Attempts)
}
