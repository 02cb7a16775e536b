package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tis-writeback/writeback/contract"
)

// writesThen mocks the recovery phase's TCS update to answer these errors in turn (nil: written).
func (s *WorkflowSuite) writesThen(errs ...error) *int {
	calls := 0
	s.env.OnActivity(contract.UpdatePlacementName, mock.Anything, mock.Anything).Return(
		func(context.Context, contract.PlacementExported) (contract.UpdateResult, error) {
			calls++
			if err := errs[min(calls, len(errs))-1]; err != nil {
				return contract.UpdateResult{}, err
			}
			return contract.UpdateResult{Attempt: 1}, nil
		})
	return &calls
}

// A request delivered twice (a job's batch retried, a command re-run) acts once: the second retry
// with the same requestId finds the record dead-lettered again and leaves it so.
func (s *WorkflowSuite) TestARequestActsOnce() {
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fast404)
	writes := s.writesThen(tcsErr(contract.ErrPermanent, 404, 1), nil)
	s.marksOf(contract.MarkPlacementFailedName)
	once := contract.SignalPayload{Reason: "placement created", By: "ops", RequestID: "job-1/placement-esr/1708036/x"}
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(contract.SignalRetry, once) }, time.Hour)
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(contract.SignalRetry, once) }, 2*time.Hour)
	var between contract.Status
	s.env.RegisterDelayedCallback(func() {
		between = s.query()
		s.env.SignalWorkflow(contract.SignalRetry, contract.SignalPayload{RequestID: "another"})
	}, 3*time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	s.Equal(contract.StateDeadLettered, between.State, "the second delivery of the request was not acted on")
	s.Equal(1, between.Retries)
	st := s.result()
	s.Equal(contract.StateCompleted, st.State)
	s.Equal(2, st.Retries)
	s.Equal(2, *writes)
}

// update sends an Update; the record's answer (accepted, or the refusal) lands in *acc and *refusal.
func (s *WorkflowSuite) update(name string, p any, acc *contract.Accepted, refusal *error) {
	s.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { *refusal = err },
		OnComplete: func(v any, err error) {
			if err != nil {
				*refusal = err
				return
			}
			*acc = v.(contract.Accepted)
		},
	}, p)
}

func refusalType(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type()
	}
	return ""
}

// The retry and abandon Updates answer what the record did with the request, and why not.
func (s *WorkflowSuite) TestUpdatesSayWhetherTheRecordAccepted() {
	s.firsts(s.env, contract.FirstPlacementAttemptName, s.settings, fast404)
	s.writesThen(tcsErr(contract.ErrPermanent, 404, 1))
	s.marksOf(contract.MarkPlacementFailedName)
	foreign := placement
	foreign.PlacementID = 99
	foreignJSON, _ := json.Marshal(foreign)
	type answer struct {
		acc contract.Accepted
		err error
		why string
	}
	got := make([]*answer, 0, 7)
	ask := func(name string, p contract.SignalPayload) {
		a := &answer{}
		got = append(got, a)
		s.update(name, p, &a.acc, &a.err)
	}
	s.env.RegisterDelayedCallback(func() {
		ask(contract.UpdateRetry, contract.SignalPayload{Record: foreignJSON})
		ask(contract.UpdateRetry, contract.SignalPayload{Record: json.RawMessage(`{"placementId":"x"}`)})
		ask(contract.UpdateRetry, contract.SignalPayload{By: "ops", RequestID: "r1"})
		ask(contract.UpdateRetry, contract.SignalPayload{By: "ops", RequestID: "r2"}) // now Updating
	}, time.Hour)
	s.env.RegisterDelayedCallback(func() {
		ask(contract.UpdateRetry, contract.SignalPayload{RequestID: "r1"})
		ask(contract.UpdateRetry, contract.SignalPayload{RequestID: "r3", MaxRetries: 1})
		ask(contract.UpdateAbandon, contract.SignalPayload{Reason: "placement deleted", By: "ops", RequestID: "r4"})
	}, 2*time.Hour)
	s.env.ExecuteWorkflow(contract.PlacementWorkflowType, placement)
	st := s.result()
	s.Equal(contract.StateAbandoned, st.State)
	s.Equal(1, st.Retries)
	s.Require().Len(got, 7)
	for _, a := range got {
		a.why = refusalType(a.err)
		if a.err != nil {
			s.NotEmpty(a.err.Error(), "a refusal says why")
		} else {
			s.NotEmpty(a.acc.Signal, "every update was answered")
		}
	}
	s.Equal(contract.RefusedInvalidRecord, got[0].why, "a foreign record")
	s.Equal(contract.RefusedInvalidRecord, got[1].why, "an invalid record")
	s.Equal("", got[2].why)
	s.Equal(contract.Accepted{Signal: contract.SignalRetry, DeadLetteredAt: got[2].acc.DeadLetteredAt}, got[2].acc)
	s.NotEmpty(got[2].acc.DeadLetteredAt)
	s.Equal(contract.RefusedNotParked, got[3].why, "the record is updating")
	s.Equal(contract.RefusedActedOn, got[4].why)
	s.Equal(contract.RefusedMaxRetries, got[5].why)
	s.Equal("", got[6].why)
	s.Equal(contract.SignalAbandon, got[6].acc.Signal)
	s.Equal(1, got[6].acc.Retries)
}
