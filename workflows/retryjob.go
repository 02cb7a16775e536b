package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tis-writeback/writeback/contract"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// A job sends its requests in chunks of about one second at its rate, records each chunk's answers
// in its own state before the next, and watches the outcomes of the records it sent while the next
// chunks go out.
const (
	maxChunk = 100
	// jobRatioOutcomes is how many outcomes the failure ratio (--max-failure-ratio) needs; until the job
	// has them, at most this many records are out without an outcome, so a job of bad records halts
	// after about this many.
	jobRatioOutcomes = 10
	// maxWatching bounds the records out without an outcome (what one look at the outcomes reads).
	maxWatching = 500
	// watchRound is how long one look at the outcomes waits for more of them to settle.
	watchRound = 2 * time.Second
	// A job continues as new, carrying its state, once its history passes jobHistoryLimit events or
	// it ran jobActivitiesPerRun activities (about 6 events each with their memo).
	jobHistoryLimit     = 4000
	jobActivitiesPerRun = 500
	// jobHeartbeat is the job's activities' heartbeat timeout (a request takes at most 10 s).
	jobHeartbeat = 15 * time.Second
)

// RetryJob runs a retry job.
func RetryJob(ctx workflow.Context, in contract.JobInput) (contract.JobStatus, error) {
	j := &job{in: in}
	if err := j.setup(ctx); err != nil {
		return j.st, err
	}
	return j.run(ctx)
}

type job struct {
	in        contract.JobInput
	st        contract.JobStatus
	cancelled bool
	// watching: the records sent whose outcome is not known yet (contract.JobInput.Watching across runs).
	watching []contract.Watched
	// sending is false once every record was sent (or the job stopped); watcherDone once the
	// watcher ended (it ends when nothing is left to watch and nothing more will be sent).
	sending, watcherDone bool
	// activities counts this run's activities (see jobActivitiesPerRun).
	activities         int
	cancelCh, resumeCh workflow.ReceiveChannel
}

func (j *job) setup(ctx workflow.Context) error {
	if j.in.Status != nil {
		j.st = *j.in.Status
	} else {
		j.in.IDs = distinct(j.in.IDs) // a record listed twice is one record: one request, counted once
		j.st = contract.JobStatus{ID: j.in.ID, State: contract.JobRunning, Total: len(j.in.IDs) + j.in.SkippedAtStart, Pending: len(j.in.IDs),
			Skipped: j.in.SkippedAtStart, By: j.in.By, Reason: j.in.Reason, StartedAt: workflow.Now(ctx).UTC().Format(time.RFC3339)}
		for _, f := range j.in.SkippedExamples {
			j.note(f)
		}
		j.in.SkippedExamples = nil // kept in the status; not carried into a continued run
	}
	j.watching, j.in.Watching = j.in.Watching, nil
	if err := workflow.SetQueryHandler(ctx, contract.QueryJob, func() (contract.JobStatus, error) { return j.st, nil }); err != nil {
		return err
	}
	j.cancelCh = workflow.GetSignalChannel(ctx, contract.SignalJobCancel)
	j.resumeCh = workflow.GetSignalChannel(ctx, contract.SignalJobResume)
	workflow.Go(ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(j.cancelCh, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			j.cancelled = true
		})
		sel.AddReceive(j.resumeCh, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			j.resume(ctx)
		})
		for {
			sel.Select(ctx)
		}
	})
	return j.publish(ctx)
}

// resume lets a halted job go on: the operator looked, so the canary's word is not needed again,
// and the failure ratio starts afresh.
func (j *job) resume(ctx workflow.Context) {
	if j.st.State != contract.JobHalted {
		workflow.GetLogger(ctx).Info("resume ignored: the job is not halted", "state", j.st.State)
		return
	}
	j.st.State, j.st.HaltReason = contract.JobRunning, ""
	j.st.CanaryDone, j.in.Canary = true, 0
	j.st.RatioFrom, j.st.RatioDeadLetteredFrom = j.outcomes(), j.st.DeadLettered
	workflow.GetLogger(ctx).Info("job resumed")
	_ = j.publish(ctx)
}

// drainSignals takes the cancels and resumes not yet received, before the run hands over.
func (j *job) drainSignals(ctx workflow.Context) {
	for j.cancelCh.ReceiveAsync(nil) {
		j.cancelled = true
	}
	for j.resumeCh.ReceiveAsync(nil) {
		j.resume(ctx)
	}
}

// publish keeps the job's status in its memo, so `jobs` lists it without a worker.
func (j *job) publish(ctx workflow.Context) error {
	return workflow.UpsertMemo(ctx, map[string]any{contract.MemoJob: j.st})
}

// run sends the records' requests while a second coroutine watches their outcomes.
func (j *job) run(ctx workflow.Context) (contract.JobStatus, error) {
	j.sending = true
	watchCtx, stopWatching := workflow.WithCancel(ctx)
	var watchErr error
	workflow.Go(watchCtx, func(ctx workflow.Context) {
		watchErr = j.watch(ctx)
		j.watcherDone = true
	})
	err := j.send(ctx)
	j.sending = false
	if err == nil && !j.cancelled {
		// Every record sent: wait for the last outcomes (or a cancel).
		err = workflow.Await(ctx, func() bool { return j.watcherDone || j.cancelled || j.tooLong(ctx) })
		if err == nil && !j.watcherDone && !j.cancelled {
			err = j.continueAsNew(ctx)
		}
	}
	stopWatching()
	var can *workflow.ContinueAsNewError
	switch {
	case errors.As(err, &can):
		return j.st, err
	case err == nil && watchErr != nil && !j.cancelled:
		err = watchErr
	}
	if err != nil {
		return j.st, err
	}
	if !j.cancelled && j.st.State == contract.JobHalted {
		// Halted at the end: it stays Halted (the operator should see why) until resumed or cancelled.
		if err := j.gate(ctx); err != nil {
			return j.st, err
		}
	}
	if j.cancelled {
		j.st.State = contract.JobCancelled // said at once; the last look below only fills in outcomes
		if err := j.publish(ctx); err != nil {
			return j.st, err
		}
		j.lastLook(ctx)
		j.st.Updating += len(j.watching) // sent, outcome not known
		j.watching = nil
	} else {
		j.st.State = contract.JobDone
	}
	return j.st, j.publish(ctx)
}

// send sends the records' requests chunk by chunk: a canary first, then at the job's rate while
// the outcomes allow. A chunk's answers are in the job's state before the next chunk goes.
func (j *job) send(ctx workflow.Context) error {
	for len(j.in.IDs) > 0 {
		if err := j.gate(ctx); err != nil || j.cancelled {
			return err
		}
		if j.tooLong(ctx) {
			return j.continueAsNew(ctx)
		}
		canary := !j.st.CanaryDone && j.in.Canary > 0 && j.in.Signal == contract.SignalRetry
		n := min(max(int(j.in.Rate+0.999), 1), maxChunk) // about a second of requests
		if canary {
			n = min(n, j.in.Canary)
		} else {
			room, err := j.roomToSend(ctx)
			if err != nil {
				return err
			}
			if room == 0 {
				continue // halted, cancelled or too long: looked at again above
			}
			n = min(n, room)
		}
		chunk := j.in.IDs[:min(n, len(j.in.IDs))]
		sent, err := j.sendChunk(ctx, chunk)
		if err != nil {
			return err
		}
		j.in.IDs = j.in.IDs[len(chunk):]
		j.st.Pending -= len(chunk)
		if sent == nil {
			// Cancelled while the chunk hung (a record's worker did not answer): whether these
			// records took the request is not known; they are counted so, not as signalled.
			j.st.NotKnown += len(chunk)
			j.note(contract.JobFailure{WorkflowID: chunk[0], What: "not known",
				Reason: fmt.Sprintf("cancelled while a chunk of %d requests from here was unanswered", len(chunk))})
			return j.publish(ctx)
		}
		accepted := j.record(ctx, sent, canary)
		if err := j.publish(ctx); err != nil {
			return err
		}
		if canary && accepted > 0 {
			if err := j.awaitCanary(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// sendChunk sends one chunk and returns each record's answer. A cancel waits for the chunk in
// flight (about a second), so the counts stay exact; only a chunk still unanswered cancelWait
// later is given up, and then sent is nil.
func (j *job) sendChunk(ctx workflow.Context, chunk []string) ([]contract.Sent, error) {
	cctx, stop := workflow.WithCancel(ctx)
	defer stop()
	actx := workflow.WithActivityOptions(cctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		// A worker that died mid-chunk is noticed by its silence; the chunk is then sent again.
		HeartbeatTimeout: jobHeartbeat,
		RetryPolicy:      &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	req := contract.SendRequest{JobID: j.st.ID, Signal: j.in.Signal, IDs: chunk, Rate: j.in.Rate,
		Payload: contract.SignalPayload{Reason: j.in.Reason, By: j.in.By, Job: j.st.ID, RequestID: j.st.ID, MaxRetries: j.in.MaxRetries}}
	j.activities++
	f := workflow.ExecuteActivity(actx, contract.SendRequestsActivity, req)
	if err := workflow.Await(ctx, func() bool { return f.IsReady() || j.cancelled }); err != nil {
		return nil, err
	}
	if !f.IsReady() {
		if _, err := workflow.AwaitWithTimeout(ctx, cancelWait, f.IsReady); err != nil {
			return nil, err
		}
		if !f.IsReady() {
			return nil, nil
		}
	}
	var sent []contract.Sent
	err := f.Get(ctx, &sent)
	return sent, err
}

// cancelWait is how long a cancel waits for the chunk in flight before giving it up.
const cancelWait = 5 * time.Second

// record counts a chunk's answers and watches the records that accepted; it returns how many did.
func (j *job) record(ctx workflow.Context, sent []contract.Sent, canary bool) int {
	wait := j.in.OutcomeWait
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	if canary {
		wait = max(wait, 10*time.Minute) // the canary must settle before the rest go
	}
	accepted := 0
	for _, s := range sent {
		if !s.Accepted {
			j.st.Skipped++
			j.note(contract.JobFailure{WorkflowID: s.WorkflowID, What: "skipped", Reason: s.Why})
			continue
		}
		accepted++
		j.st.Signalled++
		j.watching = append(j.watching, contract.Watched{WorkflowID: s.WorkflowID, Before: s.Before,
			Until: workflow.Now(ctx).Add(wait), Canary: canary})
	}
	if canary {
		j.in.Canary -= accepted // skipped records are no canary: the next ones are
	}
	return accepted
}

// roomToSend waits until records may go out and says how many: until the failure ratio can be
// judged, at most jobRatioOutcomes without an outcome; then maxWatching. 0 when the job was
// halted, cancelled, or has to continue as new meanwhile.
func (j *job) roomToSend(ctx workflow.Context) (int, error) {
	room := func() int {
		limit := maxWatching
		if since := j.outcomes() - j.st.RatioFrom; since < jobRatioOutcomes {
			limit = max(jobRatioOutcomes-since, 1)
		}
		return max(limit-len(j.watching), 0)
	}
	err := workflow.Await(ctx, func() bool {
		return room() > 0 || j.cancelled || j.st.State == contract.JobHalted || j.tooLong(ctx) || j.watcherDone
	})
	if err != nil || j.cancelled || j.st.State == contract.JobHalted || j.tooLong(ctx) {
		return 0, err
	}
	return max(room(), 1), nil
}

// tooLong says the job's history is long enough to continue as new.
func (j *job) tooLong(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return j.activities >= jobActivitiesPerRun || info.GetCurrentHistoryLength() > jobHistoryLimit || info.GetContinueAsNewSuggested()
}

// awaitCanary waits for the canaries' outcomes; the watcher halts the job if one did not complete.
func (j *job) awaitCanary(ctx workflow.Context) error {
	err := workflow.Await(ctx, func() bool {
		return j.cancelled || j.watcherDone || !slices.ContainsFunc(j.watching, func(w contract.Watched) bool { return w.Canary })
	})
	if err == nil && j.in.Canary <= 0 && j.st.State == contract.JobRunning {
		j.st.CanaryDone = true
	}
	return err
}

// watch looks at the outcomes of the records sent, round after round, until every record was sent
// and has an outcome (or its wait ran out). It halts the job when the outcomes say so.
func (j *job) watch(ctx workflow.Context) error {
	for {
		if err := workflow.Await(ctx, func() bool { return len(j.watching) > 0 || !j.sending }); err != nil {
			return err
		}
		if len(j.watching) == 0 {
			return nil
		}
		outs, err := j.look(ctx, watchRound)
		if err != nil && ctx.Err() != nil {
			return err
		}
		// (A look that failed is a round without outcomes: the waits still run out.)
		if j.settle(ctx, outs, true) {
			if err := j.publish(ctx); err != nil {
				return err
			}
		}
	}
}

// look asks the outcomes of the records watched (the first maxWatching), waiting up to wait for
// them to settle.
func (j *job) look(ctx workflow.Context, wait time.Duration) ([]contract.JobOutcome, error) {
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    jobHeartbeat,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	}
	if wait == 0 { // one quick look (after a cancel): what it does not see stays unknown
		opts.StartToCloseTimeout, opts.RetryPolicy = 10*time.Second, &temporal.RetryPolicy{MaximumAttempts: 1}
	}
	actx := workflow.WithActivityOptions(ctx, opts)
	look := j.watching[:min(len(j.watching), maxWatching)]
	req := contract.AwaitRequest{Before: map[string]string{}, Wait: wait}
	for _, w := range look {
		req.IDs = append(req.IDs, w.WorkflowID)
		req.Before[w.WorkflowID] = w.Before
	}
	var outs []contract.JobOutcome
	j.activities++
	err := workflow.ExecuteActivity(actx, contract.AwaitOutcomesActivity, req).Get(ctx, &outs)
	return outs, err
}

// lastLook counts, once, the outcomes of the records still watched when the job was cancelled.
func (j *job) lastLook(ctx workflow.Context) {
	if len(j.watching) == 0 {
		return
	}
	if outs, err := j.look(ctx, 0); err == nil {
		j.settle(ctx, outs, false)
	}
}

// settle counts the outcomes a look found and forgets the records that settled (and, if expire,
// those whose wait ran out); it halts the job on a failed canary or a failure ratio above the
// job's, judged on the outcomes since it was last resumed. It reports whether anything changed.
func (j *job) settle(ctx workflow.Context, outs []contract.JobOutcome, expire bool) bool {
	by := make(map[string]contract.JobOutcome, len(outs))
	for _, o := range outs {
		by[o.WorkflowID] = o
	}
	now := workflow.Now(ctx)
	canaryFailed := ""
	before := len(j.watching)
	j.watching = slices.DeleteFunc(j.watching, func(w contract.Watched) bool {
		switch o := by[w.WorkflowID]; o.Result {
		case contract.JobOutcomeCompleted:
			j.st.Completed++
		case contract.JobOutcomeAbandoned:
			j.st.Abandoned++
		case contract.JobOutcomeDeadLettered:
			j.st.DeadLettered++
			j.note(contract.JobFailure{WorkflowID: o.WorkflowID, What: o.Result, Reason: o.Reason})
			if w.Canary {
				canaryFailed = o.WorkflowID + ": " + o.Reason
			}
		default: // still updating, or not looked at
			if !expire || now.Before(w.Until) {
				return false
			}
			j.st.Updating++
			if w.Canary {
				canaryFailed = w.WorkflowID + " did not complete in time"
			}
		}
		return true
	})
	if j.st.State != contract.JobRunning || j.cancelled {
		return len(j.watching) != before
	}
	outcomes, dead := j.outcomes()-j.st.RatioFrom, j.st.DeadLettered-j.st.RatioDeadLetteredFrom
	switch {
	case canaryFailed != "":
		j.halt(ctx, "canary failed: "+canaryFailed)
	case outcomes >= jobRatioOutcomes && float64(dead)/float64(outcomes) > j.in.MaxFailureRatio:
		j.halt(ctx, fmt.Sprintf("%d of %d records dead-lettered again (more than %.0f%%)", dead, outcomes,
			j.in.MaxFailureRatio*100))
	}
	return len(j.watching) != before || j.st.State != contract.JobRunning
}

func (j *job) outcomes() int { return j.st.Completed + j.st.DeadLettered + j.st.Abandoned }

// continueAsNew hands the job, its state and the records it watches to a fresh run; after the
// signals not yet received (a cancel among them: then it does not hand over, and returns nil).
func (j *job) continueAsNew(ctx workflow.Context) error {
	j.drainSignals(ctx)
	if j.cancelled {
		return nil
	}
	st := j.st
	next := j.in
	next.Status = &st
	next.Watching = j.watching
	return workflow.NewContinueAsNewError(ctx, contract.RetryJobWorkflowType, next)
}

// gate waits while the job is halted, until it is resumed or cancelled.
func (j *job) gate(ctx workflow.Context) error {
	if j.cancelled || j.st.State != contract.JobHalted {
		return nil
	}
	return workflow.Await(ctx, func() bool { return j.cancelled || j.st.State != contract.JobHalted })
}

func (j *job) halt(ctx workflow.Context, why string) {
	j.st.State, j.st.HaltReason = contract.JobHalted, why
	workflow.GetLogger(ctx).Warn("job halted", "why", why)
}

func (j *job) note(f contract.JobFailure) {
	j.st.Recent = append(j.st.Recent, f)
	if len(j.st.Recent) > 20 {
		j.st.Recent = j.st.Recent[len(j.st.Recent)-20:]
	}
}

// distinct keeps the first of each ID, in order.
func distinct(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
