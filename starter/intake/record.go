// Package intake turns RabbitMQ deliveries into writeback workflows: validate, start with the
// deterministic workflow ID, ack only after Temporal accepted the start. A poison message goes to
// the DLQ with its reason; an infrastructure fault holds the delivery and retries, never rejects it.
package intake

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/messages"
	"github.com/tis-writeback/writeback/workflows"
)

// Record is one valid message, ready to become a workflow.
type Record struct {
	Kind         messages.Kind
	WorkflowID   string
	WorkflowType string
	RecordID     string
	Summary      string
	Input        any
}

// Decode validates a body of the given kind and builds its Record; the error is a *messages.Invalid
// for a poison message.
func Decode(kind messages.Kind, body []byte) (Record, error) {
	switch kind {
	case messages.KindPlacement:
		m, err := messages.DecodePlacement(body)
		if err != nil {
			return Record{}, err
		}
		return PlacementRecord(m), nil
	case messages.KindScan:
		m, err := messages.DecodeScan(body)
		if err != nil {
			return Record{}, err
		}
		return ScanRecord(m), nil
	}
	return Record{}, &messages.Invalid{Reason: fmt.Sprintf("unknown kind of record %q", kind)}
}

// PlacementRecord is the Record of a valid placement message.
func PlacementRecord(m messages.PlacementExported) Record {
	return Record{Kind: messages.KindPlacement, WorkflowID: m.WorkflowID(), WorkflowType: workflows.PlacementWorkflowType,
		RecordID: m.RecordID(), Summary: m.Summary(), Input: m}
}

// ScanRecord is the Record of a valid scan message.
func ScanRecord(m messages.ScanCompleted) Record {
	return Record{Kind: messages.KindScan, WorkflowID: m.WorkflowID(), WorkflowType: workflows.ScanWorkflowType,
		RecordID: m.RecordID(), Summary: m.Summary(), Input: m}
}

// Starter starts workflows.
type Starter interface {
	// Start starts rec's workflow. started is false when a run of that ID exists or existed
	// (a duplicate or redelivered message). An error means Temporal did not accept the start.
	Start(ctx context.Context, rec Record) (started bool, err error)
}

// Refusal reports whether err is Temporal refusing a start for the request itself (an invalid
// argument such as an ID over the server's limit or an unregistered search attribute, or an
// unknown namespace), as opposed to Temporal being unavailable. reason is the server's own words.
func Refusal(err error) (reason string, refused bool) {
	var inv *serviceerror.InvalidArgument
	var nsNotFound *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &inv):
		return inv.Message, true
	case errors.As(err, &nsNotFound):
		return nsNotFound.Error(), true
	}
	return "", false
}

// TemporalStarter starts workflows on Temporal.
type TemporalStarter struct {
	Client client.Client
	// AllowRerun starts a new run even where a closed run of the ID exists (reconcile).
	AllowRerun bool
}

// Start implements Starter.
func (s TemporalStarter) Start(ctx context.Context, rec Record) (bool, error) {
	reuse := enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE // a late duplicate must not start another run
	if s.AllowRerun {
		reuse = enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	}
	_, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       rec.WorkflowID,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    reuse,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without it the SDK quietly returns the running workflow: we want to know it was a duplicate.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            rec.Summary,
		// Set at start so the workflow need not upsert them (one event less per record).
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.KindKey.ValueSet(string(rec.Kind)),
			workflows.RecordIDKey.ValueSet(rec.RecordID),
			workflows.StateKey.ValueSet(workflows.StateUpdating),
		),
	}, rec.WorkflowType, rec.Input)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &already) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}
