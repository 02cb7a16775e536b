package operate

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
)

// Answer is what a record did with an operator's request.
type Answer struct {
	WorkflowID string
	Accepted   bool
	Record     contract.Accepted // when accepted
	// Code and Why say why not: a contract.Refused* code, or "closed" when no run is open.
	Code, Why string
}

// Closed is the Answer code of a record whose workflow is not running.
const Closed = "closed"

// Ask sends a retry or abandon to one record as an Update and returns its answer. updateID, when
// set, makes the request the same one if sent again (Temporal keeps an Update's outcome by its ID).
// An error means the request may not have reached the record (Temporal unreachable, no worker
// before ctx's deadline): asking again with the same updateID and requestId is safe.
func Ask(ctx context.Context, c client.Client, id, runID, name, updateID string, p contract.SignalPayload) (Answer, error) {
	a := Answer{WorkflowID: id}
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, RunID: runID, UpdateID: updateID,
		UpdateName: name, Args: []any{p}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, &a.Record)
	}
	var nf *serviceerror.NotFound
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		a.Accepted = true
	case errors.As(err, &nf):
		a.Code, a.Why = Closed, "closed: no open run"
	case errors.As(err, &app) && app.Type() != "":
		a.Code, a.Why = app.Type(), app.Message()
	default:
		return a, fmt.Errorf("%s: %w", id, err)
	}
	return a, nil
}
