package operate

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"golang.org/x/time/rate"

	"github.com/tis-writeback/writeback/contract"
)

// Jobs are the activities of a retry job: they signal the records' workflows and watch them.
type Jobs struct {
	Temporal client.Client
}

// askTimeout bounds one request of a job: the record's worker must take it (a parked record is
// usually not in a worker's cache and is replayed first). Past it the chunk is sent again.
const askTimeout = 10 * time.Second

// SendRequests sends one chunk of a job's requests at the job's rate and returns each record's
// answer. Every request carries the job's ID as its requestId and Update ID, so a chunk sent again
// (this activity retried after a worker died mid-chunk) acts on no record twice: the record
// answers "already acted on", counted as accepted.
func (j *Jobs) SendRequests(ctx context.Context, req contract.SendRequest) ([]contract.Sent, error) {
	lim := rate.NewLimiter(rate.Limit(max(req.Rate, 0.1)), 1)
	out := make([]contract.Sent, 0, len(req.IDs))
	for _, id := range req.IDs {
		if err := lim.Wait(ctx); err != nil {
			return nil, err
		}
		activity.RecordHeartbeat(ctx) // alive (no progress in it: a chunk sent again is answered the same)
		actx, cancel := context.WithTimeout(ctx, askTimeout)
		a, err := Ask(actx, j.Temporal, id, "", req.Signal, req.JobID, req.Payload)
		cancel()
		if err != nil {
			return nil, err // the chunk is sent again: the records that took it answer so
		}
		s := contract.Sent{WorkflowID: id, Accepted: a.Accepted, Before: a.Record.DeadLetteredAt, Why: a.Why}
		if a.Code == contract.RefusedActedOn {
			// Took it before this chunk was sent again (its deadLetteredAt then is not known: a
			// dead-lettering seen later is a new one, since acting moved it on).
			s = contract.Sent{WorkflowID: id, Accepted: true}
		}
		out = append(out, s)
	}
	return out, nil
}

// AwaitOutcomes watches signalled records until they settle or the wait passes.
func (j *Jobs) AwaitOutcomes(ctx context.Context, req contract.AwaitRequest) ([]contract.JobOutcome, error) {
	outs := Await(ctx, j.Temporal, req.IDs, req.Before, req.Wait, func() { activity.RecordHeartbeat(ctx) })
	res := make([]contract.JobOutcome, len(outs))
	for i, o := range outs {
		res[i] = contract.JobOutcome{WorkflowID: o.WorkflowID, Result: o.Result, Reason: o.Reason}
	}
	return res, ctx.Err()
}
