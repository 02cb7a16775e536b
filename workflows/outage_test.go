package workflows_test

import (
	"context"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/activities"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/workflows"
)

func refused(attempt int32) error {
	return temporal.NewApplicationErrorWithOptions("TCS is in outage mode: not sent", contract.ErrOutage,
		temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{contract.FailureDetails{Attempt: attempt}}})
}

// An outage for everyone (the worker refuses the requests) lasting far longer than the budget
// spends none of it: the record is written when TCS is back, never dead-lettered.
func (s *WorkflowSuite) TestOutageLongerThanTheBudgetNeverDeadLetters() {
	s.env = s.NewTestWorkflowEnvironment()
	settings := contract.DefaultRetrySettings()
	settings.Budget = 2 * time.Minute
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.watchSearchAttributes()
	s.firsts(s.env, contract.FirstPlacementAttemptName, settings,
		contract.FirstAttempt{ErrType: contract.ErrOutage, Message: "TCS is in outage mode: not sent"})
	start := s.env.Now()
	calls := 0
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			calls++
			if s.env.Now().Sub(start) < 3*time.Hour {
				return contract.UpdateResult{}, refused(1)
			}
			return contract.UpdateResult{Attempt: 1}, nil
		})
	s.env.OnActivity(contract.MarkPlacementFailedName, mock.Anything, mock.Anything).Return(contract.MarkResult{}, nil).Never()
	var mid contract.Status
	s.env.RegisterDelayedCallback(func() { mid = s.query() }, 2*time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal(contract.StateUpdating, mid.State)
	s.Contains(mid.LastError, "outage mode")
	st := s.result()
	s.Equal(contract.StateCompleted, st.State)
	s.Equal(1, st.Attempts, "refused calls were never sent: not attempts")
	s.Greater(calls, 150, "it kept asking, at most a minute apart")
	s.NotContains(s.saAll["WritebackState"], contract.StateDeadLettered)
}

// A transient failure only this record gets still spends its budget.
func (s *WorkflowSuite) TestOwnTransientFailuresStillSpendTheBudget() {
	s.env = s.NewTestWorkflowEnvironment()
	settings := contract.DefaultRetrySettings()
	settings.Budget = 30 * time.Second
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.watchSearchAttributes()
	s.firsts(s.env, contract.FirstPlacementAttemptName, settings, fastTransient)
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(contract.UpdateResult{}, tcsErr(contract.ErrTransient, 503, 1))
	s.env.OnActivity(contract.CheckPlacementWrittenName, mock.Anything, mock.Anything).Return(false, nil)
	s.marksOf(contract.MarkPlacementFailedName)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal([]string{"budget-spent"}, s.saAll["WritebackFailure"])
}

// The worker wakes a record it refused as soon as TCS takes requests again.
func (s *WorkflowSuite) TestTCSAvailableSignalEndsTheWait() {
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings,
		contract.FirstAttempt{ErrType: contract.ErrOutage, Message: "not sent"})
	calls := 0
	var at []time.Duration
	start := s.env.Now()
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			calls++
			at = append(at, s.env.Now().Sub(start))
			if calls < 8 {
				return contract.UpdateResult{}, refused(1)
			}
			return contract.UpdateResult{Attempt: 1}, nil
		})
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(contract.SignalTCSAvailable, nil) }, 200*time.Second)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal(contract.StateCompleted, s.result().State)
	s.Less(at[len(at)-1], 210*time.Second, "woken at 200 s, not at the end of a minute's wait: %v", at)
}

// When TCS does not answer the look before dead-lettering either, the record is dead-lettered
// anyway (its own failures): the look is a few attempts, not a wait without end.
func (s *WorkflowSuite) TestLookBeforeDeadLetteringGivesUp() {
	s.env = s.NewTestWorkflowEnvironment()
	settings := contract.DefaultRetrySettings()
	settings.Budget = 10 * time.Second
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.watchSearchAttributes()
	s.firsts(s.env, contract.FirstPlacementAttemptName, settings, fastTransient)
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(contract.UpdateResult{}, tcsErr(contract.ErrTransient, 503, 1))
	s.env.OnActivity(contract.CheckPlacementWrittenName, mock.Anything, mock.Anything).Return(false, temporal.NewApplicationError("503", "transient")).Times(3)
	marks := s.marksOf(contract.MarkPlacementFailedName)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Len(*marks, 1)
	s.Equal([]string{"budget-spent"}, s.saAll["WritebackFailure"])
}

// A call that waited for a worker past the budget left (a backlog behind the cap) never reached
// TCS: it is not the record's failure and does not dead-letter it.
func (s *WorkflowSuite) TestQueuedPastTheBudgetIsNotAFailure() {
	s.env = s.NewTestWorkflowEnvironment()
	settings := contract.DefaultRetrySettings()
	settings.Budget = time.Minute
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.watchSearchAttributes()
	s.firsts(s.env, contract.FirstPlacementAttemptName, settings, fastTransient)
	calls := 0
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			calls++
			if calls <= 3 {
				return contract.UpdateResult{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil)
			}
			return contract.UpdateResult{Attempt: 1}, nil
		})
	s.env.OnActivity(contract.MarkPlacementFailedName, mock.Anything, mock.Anything).Return(contract.MarkResult{}, nil).Never()
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(contract.StateCompleted, st.State)
	s.Equal(4, calls)
}

// A refusal gives back nothing of the record's own time: a record whose own attempts keep failing
// between refusals (a hold, an outage mode, a long cap queue now and then) still spends its budget
// on those attempts and their backoff, and dead-letters.
func (s *WorkflowSuite) TestRefusalsDoNotGiveBackTheRecordsOwnFailures() {
	s.env = s.NewTestWorkflowEnvironment()
	settings := contract.DefaultRetrySettings()
	settings.Budget, settings.InitialInterval, settings.BackoffCoefficient, settings.MaximumInterval =
		30*time.Second, time.Second, 2, 10*time.Second
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.watchSearchAttributes()
	s.firsts(s.env, contract.FirstPlacementAttemptName, settings, fastTransient)
	calls := 0
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			calls++
			switch {
			case calls > 200:
				return contract.UpdateResult{}, tcsErr(contract.ErrPermanent, 422, 1) // the budget never ran out
			case calls%3 == 0:
				// Every third call is refused: the two before it (and their backoff) were the record's.
				return contract.UpdateResult{}, refused(1)
			}
			return contract.UpdateResult{}, tcsErr(contract.ErrTransient, 503, 1)
		})
	s.env.OnActivity(contract.CheckPlacementWrittenName, mock.Anything, mock.Anything).Return(false, nil)
	s.marksOf(contract.MarkPlacementFailedName)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal([]string{"budget-spent"}, s.saAll["WritebackFailure"], "its own failures spent the budget (%d calls)", calls)
	s.Less(calls, 40, "backoffs of 1, 2, 4, 8, 10 s between its own attempts, a 30 s budget")
}

// The budget is the record's own time: each attempt's, less its wait for the rate cap, and the
// backoff after it. Waiting for a worker or at the cap spends none of it, however long.
func (s *WorkflowSuite) TestWaitsForAWorkerOrTheCapAreNotTheRecords() {
	s.env = s.NewTestWorkflowEnvironment()
	settings := contract.DefaultRetrySettings()
	settings.Budget, settings.InitialInterval, settings.BackoffCoefficient, settings.MaximumInterval =
		time.Minute, time.Second, 2, 10*time.Second
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.watchSearchAttributes()
	s.firsts(s.env, contract.FirstPlacementAttemptName, settings, fastTransient)
	calls := 0
	start := s.env.Now()
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).After(2 * time.Minute).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			calls++
			// Two minutes from schedule to answer, of which the request itself took one second.
			return contract.UpdateResult{}, temporal.NewApplicationErrorWithOptions("TCS answered 503", contract.ErrTransient,
				temporal.ApplicationErrorOptions{Details: []any{contract.FailureDetails{Attempt: 1, Status: 503, Took: time.Second}}})
		})
	s.env.OnActivity(contract.CheckPlacementWrittenName, mock.Anything, mock.Anything).Return(false, nil)
	s.marksOf(contract.MarkPlacementFailedName)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal([]string{"budget-spent"}, s.saAll["WritebackFailure"])
	// 1 s per attempt and 1+2+4+8+10+10+10 s of backoff leave 7 s after the eighth: less than the next wait.
	s.Equal(8, calls)
	s.Greater(s.env.Now().Sub(start), 15*time.Minute, "a one-minute budget, but sixteen minutes of queues")
	s.Equal(9, s.result().Attempts, "the fast attempt and eight activities")
}

// A Retry-After longer than the backoff is waited, and it is the record's time.
func (s *WorkflowSuite) TestRetryAfterIsWaitedAndSpendsTheBudget() {
	s.env = s.NewTestWorkflowEnvironment()
	settings := contract.DefaultRetrySettings()
	settings.Budget, settings.InitialInterval = time.Minute, time.Second
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.watchSearchAttributes()
	s.firsts(s.env, contract.FirstPlacementAttemptName, settings, fastTransient)
	var at []time.Duration
	start := s.env.Now()
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			at = append(at, s.env.Now().Sub(start))
			return contract.UpdateResult{}, temporal.NewApplicationErrorWithOptions("TCS answered 429", contract.ErrTransient,
				temporal.ApplicationErrorOptions{NextRetryDelay: 20 * time.Second, Details: []any{contract.FailureDetails{Attempt: 1, Status: 429}}})
		})
	s.env.OnActivity(contract.CheckPlacementWrittenName, mock.Anything, mock.Anything).Return(false, nil)
	s.marksOf(contract.MarkPlacementFailedName)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal([]string{"budget-spent"}, s.saAll["WritebackFailure"])
	s.Len(at, 3, "three waits of 20 s fill a one-minute budget: %v", at)
	s.GreaterOrEqual(at[1]-at[0], 20*time.Second)
}
