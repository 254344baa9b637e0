package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/consume"
	"github.com/billing/billing/internal/processor"
)

// maxClaimRounds bounds the rounds of a wave. A command takes three (intent, settlement,
// done) and one more for each claim it loses to another command of its charge, which
// moved the charge forward meanwhile: the rounds are bounded by the commands racing.
const maxClaimRounds = 200

// refundWaitLimit is how long a refund waits for its charge to be captured: the life of
// an authorization at the card networks. After it, the refund fails with nothing to
// refund.
const refundWaitLimit = 7 * 24 * time.Hour

// answer is the processor's answer to the call an intent stands for.
type answer struct {
	approved  bool
	reference string
	code      string // failure code when not approved
}

// op is one capture, cancel or refund command on its way through a wave.
type op struct {
	it      *item
	base    charge.Charge // the charge as stored when the wave began
	view    charge.Charge // the charge as this command last saw its log
	fresh   bool          // view ends with a transition this delivery just claimed
	ans     *answer       // the processor's answer, once asked
	claimed []charge.Transition
	before  []charge.Charge // the charge before each claimed transition
	next    *charge.Transition
}

// operateWave applies capture, cancel and refund commands, at most one per charge, in
// bulk: it reads their charges, then in rounds catches each up with its log, decides its
// next step (calling the processor where the step needs it) and claims all the steps in
// one insert; a command whose claim lost to another command of its charge looks again in
// the next round. Each command claims an intent before its processor call and the
// settlement after it, and every step re-runs on redelivery and finds its work done where
// it was: the intent or settlement already in the log, the processor's answer the same
// for the same key. Then the events, ledger entries, refunds and views the settlements
// call for are written, in bulk, and the events published. An error leaves every command
// of the wave to be retried; re-running is safe.
func (w *Worker) operateWave(ctx context.Context, items []*item) error {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.cmd.ChargeID
	}
	stored, err := w.store.ChargesByID(ctx, ids)
	if err != nil {
		return err
	}
	var active, finished []*op
	var dead []charge.DeadLetter
	for _, it := range items {
		c, ok := stored[it.cmd.ChargeID]
		switch {
		case ok:
			active = append(active, &op{it: it, base: c, view: c})
		case w.now().Sub(it.cmd.AcceptedAt) < refundWaitLimit:
			// Its create command has not been handled yet (only a refund gets here).
			it.outcome = outcomeWait
		default:
			// Not for ever for a charge that never comes.
			w.logger.ErrorContext(ctx, "command for a charge that was never stored", "type", it.cmd.Type, "charge_id", it.cmd.ChargeID)
			it.outcome = outcomeRefused
			dead = append(dead, consume.DeadLetterOf(it.msg, "no such charge after "+refundWaitLimit.String(), w.now()))
		}
	}
	if err := w.store.InsertDeadLetters(ctx, dead); err != nil {
		return err
	}
	w.metrics.givenUp.Add(float64(len(dead)))
	for round := 0; len(active) > 0; round++ {
		if round == maxClaimRounds {
			return fmt.Errorf("%d commands gave up claiming after %d rounds: %w", len(active), round, charge.ErrUnavailable)
		}
		if err := w.catchUp(ctx, active); err != nil {
			return err
		}
		w.decide(ctx, active)
		var (
			claims []charge.Transition
			still  []*op
		)
		for _, o := range active {
			switch {
			case o.it.outcome != outcomeAck:
				// Settled later, or never: nothing more to write now.
			case o.next == nil:
				finished = append(finished, o)
			default:
				claims = append(claims, *o.next)
				still = append(still, o)
			}
		}
		s := w.startOpsStep(ctx, "store.ClaimTransitions", trace.SpanKindClient, still)
		lost, err := w.store.ClaimTransitions(ctx, claims)
		if s.end(err); err != nil {
			return err
		}
		// A claim lost means another command of the charge went first: look again. One
		// won leaves the view up to date (a later transition by another command would only
		// make the next claim lose).
		lostSet := fromOne(lost)
		for _, o := range still {
			if o.fresh = lostSet[o.view.ID] == 0; o.fresh {
				o.claimed = append(o.claimed, *o.next)
				o.before = append(o.before, o.view)
				o.view = o.view.Apply(*o.next)
			}
		}
		active = still
	}
	return w.finish(ctx, finished)
}

// catchUp applies to each view the transitions logged after it, unless it is fresh.
func (w *Worker) catchUp(ctx context.Context, ops []*op) error {
	from := map[string]int{}
	for _, o := range ops {
		if !o.fresh {
			from[o.view.ID] = int(o.view.Version) + 1
		}
	}
	logs, err := w.store.TransitionsFrom(ctx, from)
	if err != nil {
		return err
	}
	for _, o := range ops {
		for _, t := range logs[o.view.ID] {
			if t.Sequence != int(o.view.Version)+1 {
				break
			}
			o.view = o.view.Apply(t)
		}
	}
	return nil
}

// decide runs nextStep for each op, at most Concurrency at once (it may call the
// processor): o.next is the transition to claim, nil when the command's settlement is in
// the log or the command is to wait, be retried or refused (marked on its item).
func (w *Worker) decide(ctx context.Context, ops []*op) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, w.cfg.Concurrency)
	for _, o := range ops {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			next, done, err := w.nextStep(ctx, o.it, o.view, &o.ans)
			switch {
			case err != nil:
				w.logger.WarnContext(ctx, "applying command", "type", o.it.cmd.Type, "charge_id", o.it.cmd.ChargeID, "error", err)
				o.it.outcome = outcomeAway
			case done:
				o.next = nil
			default:
				o.next = next // nil: nextStep marked the item to wait, retry or be refused
			}
		})
	}
	wg.Wait()
}

// nextStep decides what its command does next with the charge as view shows it: a
// transition to claim, done (the command's settlement is in the log), or neither, with
// it marked to wait, retry or be acknowledged as refused. ans carries the processor's
// answer across rounds, so that losing a claim does not call the processor again.
func (w *Worker) nextStep(ctx context.Context, it *item, view charge.Charge, ans **answer) (*charge.Transition, bool, error) {
	now := w.now()
	cmd := it.cmd
	switch cmd.Type {
	case charge.CommandCapture, charge.CommandCancel:
		want := charge.KindCaptureRequested
		if cmd.Type == charge.CommandCancel {
			want = charge.KindCancelRequested
		}
		switch {
		case view.Operation != nil && view.Operation.Kind == want:
			// Our intent is in the log: call the processor, then settle.
		case view.Operation == nil && settledBy(view, cmd.Type):
			return nil, true, nil
		case view.Status == charge.StatusPending:
			it.outcome = outcomeWait
			return nil, false, nil
		default:
			var refusal *charge.InvalidRequestError
			var t charge.Transition
			if cmd.Type == charge.CommandCapture {
				amount := cmp.Or(cmd.Amount, view.Amount)
				refusal, t = view.CheckCapture(amount), view.RequestCapture(now, amount, it.msg.Attempt())
			} else {
				refusal, t = view.CheckCancel(), view.RequestCancel(now, it.msg.Attempt())
			}
			if refusal != nil {
				w.logger.InfoContext(ctx, "command refused", "type", cmd.Type, "charge_id", cmd.ChargeID, "reason", refusal.Detail)
				it.outcome = outcomeRefused
				return nil, false, nil
			}
			t.Operation = cmd.ID
			return &t, false, nil
		}
		a, err := w.call(ctx, it, view.Operation.Delivery, func(ctx context.Context) (processor.Result, error) {
			if cmd.Type == charge.CommandCapture {
				return w.processor.Capture(ctx, processor.CaptureRequest{ChargeID: view.ID, AuthorizationID: view.AuthorizationID, Amount: view.Operation.Amount})
			}
			return w.processor.Void(ctx, processor.VoidRequest{ChargeID: view.ID, AuthorizationID: view.AuthorizationID})
		}, ans)
		if a == nil || err != nil {
			return nil, false, err
		}
		t := view.Settle(now, a.approved, a.reference, a.code)
		return &t, false, nil

	case charge.CommandRefund:
		r := cmd.PendingRefund()
		if got, ok := view.RefundByID(r.ID); ok {
			if got.Status != charge.RefundPending {
				return nil, true, nil
			}
			a, err := w.call(ctx, it, got.Delivery, func(ctx context.Context) (processor.Result, error) {
				return w.processor.Refund(ctx, processor.RefundRequest{ChargeID: view.ID, AuthorizationID: view.AuthorizationID, RefundID: r.ID, Amount: got.Amount})
			}, ans)
			if a == nil || err != nil {
				return nil, false, err
			}
			var t charge.Transition
			if a.approved {
				t = view.RefundSucceeded(now, r.ID, a.reference)
			} else {
				t = view.RefundFailed(now, got, a.code)
			}
			return &t, false, nil
		}
		switch decision, refusal := view.CheckRefund(r.Amount); {
		case decision == charge.RefundReserve:
			t := view.ReserveRefund(now, r, it.msg.Attempt())
			return &t, false, nil
		case decision == charge.RefundWait && now.Sub(cmd.AcceptedAt) < refundWaitLimit:
			it.outcome = outcomeWait
			return nil, false, nil
		default:
			code := charge.CodeAmountTooLarge
			if refusal != nil {
				code = refusal.Code
			}
			t := view.RefundFailed(now, r, code)
			return &t, false, nil
		}
	}
	return nil, false, fmt.Errorf("command %s is not an operation", cmd.Type)
}

// settledBy reports whether view's history holds the settlement of a command of type
// typ, approved or declined: a capture or cancel is made once per charge.
func settledBy(view charge.Charge, typ charge.CommandType) bool {
	switch typ {
	case charge.CommandCapture:
		return view.Tried(charge.KindCaptureRequested)
	case charge.CommandCancel:
		return view.Tried(charge.KindCancelRequested)
	}
	return false
}

// call makes the processor call of an intent claimed at attempt number claimedAt, once
// per command handling (*ans keeps the answer), and turns its outcome into an answer: nil
// with it marked for retry on a transient error while attempts remain; a refusal with
// processing_error on a permanent one or once the attempts are used up (with a dead
// letter).
func (w *Worker) call(ctx context.Context, it *item, claimedAt uint64, f func(context.Context) (processor.Result, error), ans **answer) (*answer, error) {
	if *ans != nil {
		return *ans, nil
	}
	pctx, span := w.startCall(ctx, it, callNames[it.cmd.Type])
	res, err := f(pctx)
	endCall(span, err)
	attempts := uint64(1)
	if n := it.msg.Attempt(); n >= claimedAt && claimedAt > 0 {
		attempts = n - claimedAt + 1
	}
	switch {
	case errors.Is(err, processor.ErrTransient) || errors.Is(err, context.DeadlineExceeded):
		w.metrics.processor.WithLabelValues("transient").Inc()
		if attempts <= uint64(len(w.cfg.RetrySchedule)) {
			it.outcome = outcomeRetry
			return nil, nil
		}
		w.logger.WarnContext(ctx, "giving up on command after its last attempt", "type", it.cmd.Type, "charge_id", it.cmd.ChargeID, "attempts", attempts, "error", err)
		if err := w.store.InsertDeadLetters(ctx, []charge.DeadLetter{consume.DeadLetterOf(it.msg, err.Error(), w.now())}); err != nil {
			return nil, err
		}
		w.metrics.givenUp.Inc()
		*ans = &answer{code: charge.FailureProcessingError}
	case err != nil:
		w.metrics.processor.WithLabelValues("permanent").Inc()
		w.logger.WarnContext(ctx, "processor refused command", "type", it.cmd.Type, "charge_id", it.cmd.ChargeID, "error", err)
		*ans = &answer{code: charge.FailureProcessingError}
	case !res.Approved:
		w.metrics.processor.WithLabelValues("declined").Inc()
		*ans = &answer{reference: res.Reference, code: res.DeclineCode}
	default:
		w.metrics.processor.WithLabelValues("approved").Inc()
		*ans = &answer{approved: true, reference: res.Reference}
	}
	return *ans, nil
}

// finish writes what the commands' settlements cause: their events and ledger entries,
// their refunds' documents, the charges' views, then publishes the events. For a command
// whose delivery claimed its settlement, claimed and before hold it and the charge before
// it; otherwise (a redelivery, or a concurrent delivery that got there first) the whole log
// is read and everything it calls for is written again, a no-op where it was written.
func (w *Worker) finish(ctx context.Context, ops []*op) error {
	if len(ops) == 0 {
		return nil
	}
	var (
		events  []charge.Event
		entries []charge.LedgerEntry
		refunds []charge.Refund
		reread  = map[string]int{}
		views   = make(map[string]charge.Charge, len(ops))
	)
	for _, o := range ops {
		views[o.view.ID] = o.view
		settled := false
		for i, t := range o.claimed {
			if t.Event.ID != "" {
				settled = true
				events = append(events, charge.NewEvent(o.view, t.Event))
			}
			entries = append(entries, charge.Entries(o.before[i], t)...)
		}
		if !settled {
			reread[o.view.ID] = 1
		}
		// A refund's document is written once it is settled, and a settled refund never
		// changes: every write of it is the same.
		if o.it.cmd.Type == charge.CommandRefund {
			if r, ok := o.view.RefundByID(o.it.cmd.Refund.ID); ok && r.Status != charge.RefundPending {
				refunds = append(refunds, r)
			}
		}
	}
	logs, err := w.store.TransitionsFrom(ctx, reread)
	if err != nil {
		return err
	}
	for _, o := range ops {
		ts, ok := logs[o.view.ID]
		if !ok {
			continue
		}
		full := charge.Fold(o.base, ts)
		entries = append(entries, charge.Ledger(o.base, ts)...)
		for _, t := range ts {
			if t.Event.ID != "" && owes(o.it.cmd, t) {
				events = append(events, charge.NewEvent(full, t.Event))
			}
		}
	}
	// Events, ledger and refunds before the views: whoever sees a charge moved finds them.
	s := w.startOpsStep(ctx, "store.InsertEvents", trace.SpanKindClient, ops)
	err = w.store.InsertEvents(ctx, events)
	if s.end(err); err != nil {
		return err
	}
	s = w.startOpsStep(ctx, "store.InsertLedgerEntries", trace.SpanKindClient, ops)
	err = w.store.InsertLedgerEntries(ctx, entries)
	if s.end(err); err != nil {
		return err
	}
	s = w.startOpsStep(ctx, "store.InsertRefunds", trace.SpanKindClient, ops)
	err = w.store.InsertRefunds(ctx, refunds)
	if s.end(err); err != nil {
		return err
	}
	s = w.startOpsStep(ctx, "store.SaveCharges", trace.SpanKindClient, ops)
	err = w.converge(ctx, views)
	if s.end(err); err != nil {
		return err
	}
	s = w.startOpsStep(ctx, "send EVENTS", trace.SpanKindProducer, ops)
	err = w.events.PublishEvents(s.publishing(ctx), events)
	s.end(err)
	return err
}

// owes reports whether t's event is the one cmd's settlement writes.
func owes(cmd charge.Command, t charge.Transition) bool {
	switch cmd.Type {
	case charge.CommandCapture:
		return t.Kind == charge.KindCaptured
	case charge.CommandCancel:
		return t.Kind == charge.KindCanceled
	case charge.CommandRefund:
		return t.RefundID == cmd.Refund.ID
	}
	return false
}
