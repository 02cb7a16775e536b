package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tis-writeback/writeback/contract"
)

// decision is an operator's signal acted on while the record is a dead letter.
type decision struct {
	signal  string
	payload contract.SignalPayload
	// record is the corrected message a retry carries (nil: the same one again).
	record contract.Message
}

// listenForSignals takes the operator's retry and abandon, as signals or as Updates, and the
// workers' tcs-available. A request is acted on only while the record is a dead letter; otherwise
// it is refused (an Update hears why, a signal's refusal is logged), so a signal sent while
// Updating is not replayed later by surprise.
func (r *recorder) listenForSignals(ctx workflow.Context) error {
	for _, name := range []string{contract.UpdateRetry, contract.UpdateAbandon} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, name,
			func(_ workflow.Context, p contract.SignalPayload) (contract.Accepted, error) {
				d, err := r.decide(name, p)
				if err != nil {
					return contract.Accepted{}, err
				}
				return r.accept(d), nil
			},
			workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, p contract.SignalPayload) error {
				_, err := r.decide(name, p)
				return err
			}})
		if err != nil {
			return err
		}
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		for _, name := range []string{contract.SignalRetry, contract.SignalAbandon} {
			sel.AddReceive(workflow.GetSignalChannel(ctx, name), func(c workflow.ReceiveChannel, _ bool) {
				var p contract.SignalPayload
				if !receive(ctx, c, &p, r.log) {
					return
				}
				d, err := r.decide(name, p)
				if err != nil {
					r.log.Warn("signal ignored: "+err.Error(), "signal", name, "reason", p.Reason, "by", p.By, "requestId", p.RequestID)
					return
				}
				r.accept(d)
			})
		}
		sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalTCSAvailable), func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			r.wakes++
		})
		for {
			sel.Select(ctx)
		}
	})
	return nil
}

// decide says what the record does with an operator's request: the decision to act on, or a
// refusal (an ApplicationError whose type is a contract.Refused* code). It changes nothing, so an
// Update's validator and its handler both ask it.
func (r *recorder) decide(name string, p contract.SignalPayload) (*decision, error) {
	refuse := func(code, why string) (*decision, error) {
		return nil, temporal.NewApplicationErrorWithOptions(why, code, temporal.ApplicationErrorOptions{NonRetryable: true})
	}
	if p.RequestID != "" && slices.Contains(r.acted, p.RequestID) {
		return refuse(contract.RefusedActedOn, "already acted on request "+p.RequestID)
	}
	if r.status.State != contract.StateDeadLettered || r.pending != nil {
		state := r.status.State
		if r.pending != nil {
			state = "acting on a " + r.pending.signal
		}
		return refuse(contract.RefusedNotParked, "the record is not a parked dead letter ("+state+")")
	}
	d := &decision{signal: name, payload: p}
	if name != contract.SignalRetry {
		return d, nil
	}
	if p.MaxRetries > 0 && r.status.Retries >= p.MaxRetries {
		return refuse(contract.RefusedMaxRetries, fmt.Sprintf("already retried %d times (--max-retries %d)", r.status.Retries, p.MaxRetries))
	}
	if len(p.Record) == 0 {
		return d, nil
	}
	next, err := corrected(r.rec, p.Record)
	if err != nil {
		return refuse(contract.RefusedInvalidRecord, "its corrected record is not usable: "+err.Error())
	}
	switch {
	case r.poison != "" || !sameMessage(next, r.rec):
		d.record = next
	case p.Offer:
		// A byte-identical duplicate (e.g. redelivered on the queue) is not a correction.
		return refuse(contract.RefusedSameRecord, "the corrected record is the record as it is")
	default:
		// An operator sent the record as it is: a plain retry.
	}
	return d, nil
}

// accept makes d the record's next step and remembers its request.
func (r *recorder) accept(d *decision) contract.Accepted {
	p := d.payload
	r.log.Info("operator request accepted", "signal", d.signal, "reason", p.Reason, "by", p.By, "job", p.Job,
		"requestId", p.RequestID, "corrected", d.record != nil)
	r.pending = d
	if p.RequestID != "" {
		r.acted = append(r.acted, p.RequestID)
		if len(r.acted) > maxActed {
			r.acted = r.acted[len(r.acted)-maxActed:]
		}
	}
	return contract.Accepted{Signal: d.signal, DeadLetteredAt: r.status.DeadLetteredAt, Retries: r.status.Retries,
		Corrected: d.record != nil}
}

// maxActed bounds the request IDs a record remembers: far more than the requests one record sees.
const maxActed = 100
