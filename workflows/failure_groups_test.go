package workflows_test

import (
	"context"
	"encoding/json"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/tis-writeback/writeback/activities"
	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/workflows"
)

// marks records every dead letter the mark activity is given.
func (s *WorkflowSuite) marksOf(name string) *[]contract.DeadLetter {
	got := &[]contract.DeadLetter{}
	s.env.OnActivity(name, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, dl contract.DeadLetter) (contract.MarkResult, error) {
			*got = append(*got, dl)
			return contract.MarkResult{Marked: true}, nil
		})
	return got
}

func (s *WorkflowSuite) TestFailureGroupOfAPermanentAnswer() {
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings,
		contract.FirstAttempt{ErrType: contract.ErrPermanent, Message: "TCS answered 404", Status: 404})
	marks := s.marksOf(contract.MarkPlacementFailedName)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal(contract.StateDeadLettered, s.result().State)
	s.Equal([]string{"tcs-404"}, s.saAll["WritebackFailure"])
	s.Require().Len(*marks, 1)
	s.Equal("tcs-404", (*marks)[0].Group)
}

func (s *WorkflowSuite) TestFailureGroupOfASpentBudget() {
	s.env = s.NewTestWorkflowEnvironment()
	settings := contract.DefaultRetrySettings()
	settings.Budget = 10 * time.Second
	workflows.Register(s.env, &activities.Activities{Settings: settings})
	s.watchSearchAttributes()
	s.firsts(s.env, contract.FirstPlacementAttemptName, settings, fastTransient)
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(
		func(ctx context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			return contract.UpdateResult{}, tcsErr(contract.ErrTransient, 503, 1)
		})
	s.env.OnActivity(contract.CheckPlacementWrittenName, mock.Anything, mock.Anything).Return(false, nil).Once()
	s.marksOf(contract.MarkPlacementFailedName)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal([]string{"budget-spent"}, s.saAll["WritebackFailure"])
}

// Look before dead-lettering: the answers were lost but the writes landed. The record completes:
// no FAILED mark, no CRITICAL line.
func (s *WorkflowSuite) TestSpentBudgetButTCSHoldsTheRecordCompletes() {
	for _, kind := range []string{"placement", "scan"} {
		s.Run(kind, func() {
			s.env = s.NewTestWorkflowEnvironment()
			settings := contract.DefaultRetrySettings()
			settings.Budget = 10 * time.Second
			workflows.Register(s.env, &activities.Activities{Settings: settings})
			s.watchSearchAttributes()
			lost := contract.FirstAttempt{ErrType: contract.ErrTransient, Message: "TCS did not answer in time"}
			if kind == "scan" {
				s.firsts(s.env, contract.FirstScanAttemptName, settings, lost)
				s.env.OnActivity(contract.UpdateScanName, mock.Anything, scan).Return(contract.UpdateResult{}, tcsErr(contract.ErrTransient, 503, 1))
				s.env.OnActivity(contract.CheckScanWrittenName, mock.Anything, scan).Return(true, nil).Once()
				s.env.OnActivity(contract.MarkScanErroredName, mock.Anything, mock.Anything).Return(contract.MarkResult{}, nil).Never()
				s.env.ExecuteWorkflow(contract.ScanWorkflowType, scan)
			} else {
				s.firsts(s.env, contract.FirstPlacementAttemptName, settings, lost)
				s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, placement).Return(contract.UpdateResult{}, tcsErr(contract.ErrTransient, 503, 1))
				s.env.OnActivity(contract.CheckPlacementWrittenName, mock.Anything, placement).Return(true, nil).Once()
				s.env.OnActivity(contract.MarkPlacementFailedName, mock.Anything, mock.Anything).Return(contract.MarkResult{}, nil).Never()
				s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
			}
			st := s.result()
			s.Equal(contract.StateCompleted, st.State)
			s.Empty(st.DeadLetteredAt)
			s.NotContains(s.saAll["WritebackState"], contract.StateDeadLettered)
			s.Empty(s.saAll["WritebackFailure"])
			s.env.AssertExpectations(s.T())
		})
	}
}

// A poison message that names its record becomes a dead letter of it: no TCS write, the mark, the
// poison reason as lastError, its group; a retry without a correction dead-letters it again at once.
func (s *WorkflowSuite) TestPoisonThatNamesItsRecordIsADeadLetter() {
	partial := placement
	partial.ExportedAt = time.Time{}
	writes := 0
	s.env.OnActivity(contract.FirstPlacementAttemptName, mock.Anything, mock.Anything).Return(
		func(context.Context, contract.PlacementExported) (contract.FirstAttempt, error) {
			writes++
			return contract.FirstAttempt{Settings: s.settings}, nil
		}).Maybe()
	marks := s.marksOf(contract.MarkPlacementFailedName)
	reason := `field "exportedAt" must be an RFC 3339 time, got "yesterday"`
	var parked, again contract.Status
	s.env.RegisterDelayedCallback(func() {
		parked = s.query()
		s.env.SignalWorkflow(contract.SignalRetry, contract.SignalPayload{Reason: "try again", By: "ops"})
	}, time.Hour)
	s.env.RegisterDelayedCallback(func() { again = s.query() }, 2*time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, partial, &contract.Carry{Poison: reason, PoisonGroup: "poison-exportedAt"})
	s.Equal(contract.StateDeadLettered, parked.State)
	s.Equal(reason, parked.LastError)
	s.Equal(0, parked.Attempts)
	s.Equal(0, writes, "a poison message is never written")
	s.Equal(contract.StateDeadLettered, again.State)
	s.Equal(1, again.Retries)
	s.Require().Len(*marks, 2)
	s.Equal("poison-exportedAt", (*marks)[0].Group)
	s.Equal([]string{"poison-exportedAt"}, s.saAll["WritebackFailure"])
}

// Edit and retry: the retry writes the corrected record; a foreign or invalid one is ignored.
func (s *WorkflowSuite) TestRetryWithACorrectedRecord() {
	partial := placement
	partial.PositionID = 0
	var written []contract.PlacementExported
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, mock.Anything).Return(
		func(_ context.Context, m contract.PlacementExported) (contract.UpdateResult, error) {
			written = append(written, m)
			return contract.UpdateResult{Attempt: 1}, nil
		})
	s.marksOf(contract.MarkPlacementFailedName)
	good, _ := json.Marshal(placement)
	foreign := placement
	foreign.PlacementID = 99
	foreignJSON, _ := json.Marshal(foreign)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalRetry, contract.SignalPayload{Record: foreignJSON})
		s.env.SignalWorkflow(contract.SignalRetry, contract.SignalPayload{Record: json.RawMessage(`{"placementId":1708036}`)})
	}, time.Hour)
	var between contract.Status
	s.env.RegisterDelayedCallback(func() {
		between = s.query()
		s.env.SignalWorkflow(contract.SignalRetry, contract.SignalPayload{Record: good, Reason: "positionId fixed", By: "ops"})
	}, 2*time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, partial, &contract.Carry{Poison: `required field "positionId" is missing`, PoisonGroup: "poison-positionId"})
	s.Equal(contract.StateDeadLettered, between.State, "a foreign or invalid record is ignored")
	s.Equal(0, between.Retries)
	st := s.result()
	s.Equal(contract.StateCompleted, st.State)
	s.Equal(1, st.Retries)
	s.Equal([]contract.PlacementExported{placement}, written, "the corrected record, once")
}

// A byte-identical copy of the record (a duplicate on the queue) is not a correction: no write.
func (s *WorkflowSuite) TestRetryWithTheSameRecordIsIgnored() {
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fast404)
	marks := s.marksOf(contract.MarkPlacementFailedName)
	same, _ := json.Marshal(placement)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalRetry, contract.SignalPayload{Record: same, By: "starter", Offer: true})
	}, time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(contract.StateDeadLettered, st.State)
	s.Equal(0, st.Retries)
	s.Len(*marks, 1, "no second dead-lettering, no second CRITICAL line")
}

// An operator's retry whose record is the record as it is (e.g. `retry --record-file` of the original
// message) is a plain retry: only an invalid or foreign record is ignored (docs/contract.md, Signals).
func (s *WorkflowSuite) TestOperatorRetryWithTheSameRecordRetries() {
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fast404)
	s.recoveryWrites(contract.UpdatePlacementName, contract.UpdateResult{Attempt: 1})
	s.marksOf(contract.MarkPlacementFailedName)
	same, _ := json.Marshal(placement)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalRetry, contract.SignalPayload{Record: same, Reason: "TCS fixed", By: "ops"})
	}, time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(contract.StateCompleted, st.State)
	s.Equal(1, st.Retries)
}

func (s *WorkflowSuite) TestScanRetryWithACorrectedResult() {
	s.firsts(s.env, contract.FirstScanAttemptName, s.settings, fast404)
	s.recoveryWrites(contract.UpdateScanName, contract.UpdateResult{Attempt: 1})
	s.marksOf(contract.MarkScanErroredName)
	fixed := scan
	fixed.Result = "CLEAN"
	b, _ := json.Marshal(fixed)
	other := scan
	other.ScanID = "00000000-0000-4000-8000-000000000000"
	ob, _ := json.Marshal(other)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalRetry, contract.SignalPayload{Record: ob})
		s.env.SignalWorkflow(contract.SignalRetry, contract.SignalPayload{Record: b})
	}, time.Hour)
	s.env.ExecuteWorkflow(contract.ScanWorkflowType, scan)
	st := s.result()
	s.Equal(contract.StateCompleted, st.State)
	s.Equal(1, st.Retries)
}
