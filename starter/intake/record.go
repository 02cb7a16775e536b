// Package intake turns RabbitMQ deliveries into writeback workflows: validate, start with the
// deterministic workflow ID, ack only after Temporal accepted the start. A poison message goes to
// the DLQ with its reason; an infrastructure fault holds the delivery and retries, never rejects it.
package intake

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/operate"
)

// Record is one valid message, ready to become a workflow.
type Record struct {
	Kind         contract.Kind
	WorkflowID   string
	WorkflowType string
	RecordID     string
	Summary      string
	Input        any
	// Body is the message as it arrived: a valid one is offered as a correction to a workflow of
	// the same record that is parked as a dead letter.
	Body []byte
	// Carry, for a poison message that names its record, says why it is poison (the workflow then
	// dead-letters the record without writing it).
	Carry *contract.Carry
	// Recovery is true for a record brought back (a redriven message): its workflow runs behind
	// fresh records. Origin says by whom and why (the workflow's details in the UI and history).
	Recovery bool
	Origin   string
}

// RecordOf is the Record of a message.
func RecordOf(m contract.Message) Record {
	return Record{Kind: m.Kind(), WorkflowID: m.WorkflowID(), WorkflowType: m.Kind().Spec().WorkflowType,
		RecordID: m.RecordID(), Summary: m.Summary(), Input: m}
}

// Parse reads a body of the given kind once. A valid body gives its Record (with the body, which is
// offered as a correction to a parked run of the same record). A poison one gives a *contract.Invalid
// and, when the message still names its record (a usable placementId and filename, or scanId), that
// record's Record carrying the reason: its workflow dead-letters the record without writing it.
// Otherwise the Record is zero.
func Parse(kind contract.Kind, body []byte) (Record, error) {
	m, named, err := kind.Parse(body)
	if err == nil {
		rec := RecordOf(m)
		rec.Body = body
		return rec, nil
	}
	var inv *contract.Invalid
	if !named || !errors.As(err, &inv) {
		return Record{}, err
	}
	rec := RecordOf(m)
	rec.Carry = &contract.Carry{Poison: inv.Reason, PoisonGroup: inv.Group()}
	return rec, err
}

// Decode validates a body of the given kind and builds its Record; the error is a *contract.Invalid
// for a poison message.
func Decode(kind contract.Kind, body []byte) (Record, error) {
	rec, err := Parse(kind, body)
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}

// Starter starts workflows.
type Starter interface {
	// Start starts rec's workflow. started is false when a run of that ID exists or existed
	// (a duplicate or redelivered message); a valid message is then offered as a correction to a
	// run parked as a dead letter. An error means Temporal did not accept the start.
	Start(ctx context.Context, rec Record) (started bool, err error)
}

// Refusal reports whether err is Temporal refusing a start for the request itself (an invalid
// argument such as an ID over the server's limit), as opposed to Temporal being unavailable or set
// up wrong. reason is the server's own words. A search attribute the server does not know, or an
// unknown namespace, is the deployment's fault and would refuse every message alike: not a refusal
// (the delivery is held and the log says why: a message is never dead-lettered for an
// infrastructure fault; docs/operating.md, What happens on each fault).
func Refusal(err error) (reason string, refused bool) {
	var inv *serviceerror.InvalidArgument
	if errors.As(err, &inv) && !strings.Contains(strings.ToLower(inv.Message), "search attribute") {
		return inv.Message, true
	}
	return "", false
}

// TemporalStarter starts workflows on Temporal.
type TemporalStarter struct {
	Client client.Client
}

// Start implements Starter.
func (s TemporalStarter) Start(ctx context.Context, rec Record) (bool, error) {
	var priority temporal.Priority
	if rec.Recovery {
		priority.PriorityKey = contract.RecoveryPriority // behind fresh records, here and at the TCS cap
	}
	args := []any{rec.Input}
	if rec.Carry != nil {
		args = append(args, rec.Carry)
	}
	_, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       rec.WorkflowID,
		TaskQueue:                contract.TaskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, // a late duplicate must not start another run
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without it the SDK quietly returns the running workflow: we want to know it was a duplicate.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            rec.Summary,
		Priority:                                 priority,
		StaticDetails:                            rec.Origin,
		// Set at start so the workflow need not upsert them (one event less per record).
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.KindKey.ValueSet(string(rec.Kind)),
			contract.RecordIDKey.ValueSet(rec.RecordID),
			contract.StateKey.ValueSet(contract.StateUpdating),
		),
	}, rec.WorkflowType, args...)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &already) {
		return false, s.offerCorrection(ctx, rec)
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// offerCorrection sends a valid message of a record whose run is parked as a dead letter to that
// run as a retry with the message as its record. The workflow ignores it when it is the same
// message (a plain duplicate) or the run is not a dead letter.
func (s TemporalStarter) offerCorrection(ctx context.Context, rec Record) error {
	if rec.Body == nil || rec.Carry != nil {
		return nil
	}
	parked, err := operate.Parked(ctx, s.Client, rec.WorkflowID)
	if err != nil || !parked {
		return err // not parked (running, closed: see docs/operating.md), or Temporal did not answer
	}
	var notFound *serviceerror.NotFound
	reason := "a message of this record arrived on the queue"
	if rec.Origin != "" {
		reason += " (" + rec.Origin + ")"
	}
	err = s.Client.SignalWorkflow(ctx, rec.WorkflowID, "", contract.SignalRetry, contract.SignalPayload{
		Reason: reason, By: "starter", Record: json.RawMessage(rec.Body), Offer: true})
	if errors.As(err, &notFound) {
		return nil
	}
	return err
}
