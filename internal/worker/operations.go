package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/processor"
)

// maxClaimRounds bounds how often one command re-reads its charge after losing the claim
// of the next transition to another command of the same charge. Each loss means another
// command moved the charge forward, so the rounds are bounded by the commands racing.
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

// operate applies one capture, cancel or refund command to its charge. The command first
// claims an intent as the charge's next transition, then calls the processor with the
// command's idempotency key, then claims the settling transition; a claim lost to another
// command of the same charge is followed by a re-read and a fresh decision. Every step
// re-runs on redelivery and finds its work done where it was: the intent or settlement
// already in the log, the processor's answer the same for the same key. It then writes the
// events, ledger entries and views the settlement calls for and publishes the events.
func (w *Worker) operate(ctx context.Context, it *item) error {
	cmd := it.cmd
	stored, err := w.store.ChargesByID(ctx, []string{cmd.ChargeID})
	if err != nil {
		return err
	}
	view, ok := stored[cmd.ChargeID]
	if !ok {
		// Its create command has not been handled yet (only a refund can get here): wait,
		// but not for ever for a charge that never comes.
		if w.now().Sub(cmd.AcceptedAt) < refundWaitLimit {
			it.wait = true
			return nil
		}
		w.logger.ErrorContext(ctx, "command for a charge that was never stored", "type", cmd.Type, "charge_id", cmd.ChargeID)
		it.refused = true
		return w.store.InsertDeadLetters(ctx, []charge.DeadLetter{deadLetter(it.msg, "no such charge after "+refundWaitLimit.String(), w.now())})
	}
	base := view
	var (
		ans     *answer
		claimed []charge.Transition // what this delivery claimed, with the charge before each
		before  []charge.Charge
	)
	fresh := false // view is the log's last state: this delivery just claimed its end
	for round := 0; ; round++ {
		if round == maxClaimRounds {
			return fmt.Errorf("charge %s: gave up claiming after %d rounds: %w", cmd.ChargeID, round, charge.ErrUnavailable)
		}
		if !fresh {
			if view, err = w.catchUp(ctx, view); err != nil {
				return err
			}
		}
		next, done, err := w.nextStep(ctx, it, view, &ans)
		switch {
		case err != nil:
			return err
		case done:
			return w.finish(ctx, it, base, view, claimed, before)
		case next == nil:
			return nil // waiting, retrying or refused: decided by nextStep
		}
		lost, err := w.store.ClaimTransitions(ctx, []charge.Transition{*next})
		if err != nil {
			return err
		}
		// A claim lost means another command of this charge went first: look again. One
		// won leaves view up to date (a later transition by another command would only make
		// the next claim lose).
		fresh = len(lost) == 0
		if !fresh {
			continue
		}
		claimed = append(claimed, *next)
		before = append(before, view)
		view = view.Apply(*next)
	}
}

// catchUp applies to view the transitions logged after it.
func (w *Worker) catchUp(ctx context.Context, view charge.Charge) (charge.Charge, error) {
	logs, err := w.store.TransitionsFrom(ctx, map[string]int{view.ID: int(view.Version) + 1})
	if err != nil {
		return view, err
	}
	for _, t := range logs[view.ID] {
		if t.Sequence != int(view.Version)+1 {
			break
		}
		view = view.Apply(t)
	}
	return view, nil
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
			it.wait = true
			return nil, false, nil
		default:
			var refusal *charge.InvalidRequestError
			var t charge.Transition
			if cmd.Type == charge.CommandCapture {
				amount := cmp.Or(cmd.Amount, view.Amount)
				refusal, t = view.CheckCapture(amount), view.RequestCapture(now, amount, it.msg.NumDelivered())
			} else {
				refusal, t = view.CheckCancel(), view.RequestCancel(now, it.msg.NumDelivered())
			}
			if refusal != nil {
				w.logger.InfoContext(ctx, "command refused", "type", cmd.Type, "charge_id", cmd.ChargeID, "reason", refusal.Detail)
				it.refused = true
				return nil, false, nil
			}
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
			t := view.ReserveRefund(now, r, it.msg.NumDelivered())
			return &t, false, nil
		case decision == charge.RefundWait && now.Sub(cmd.AcceptedAt) < refundWaitLimit:
			it.wait = true
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
// typ: a capture or cancel is applied once per charge.
func settledBy(view charge.Charge, typ charge.CommandType) bool {
	switch typ {
	case charge.CommandCapture:
		return view.Status == charge.StatusSucceeded && !view.Capture
	case charge.CommandCancel:
		return view.Status == charge.StatusCanceled
	}
	return false
}

// call makes the processor call of an intent claimed at delivery number claimedAt, once
// per command handling (*ans keeps the answer), and turns its outcome into an answer: nil
// with it marked for retry on a transient error while attempts remain; a refusal with
// processing_error on a permanent one or once the attempts are used up (with a dead
// letter).
func (w *Worker) call(ctx context.Context, it *item, claimedAt uint64, f func(context.Context) (processor.Result, error), ans **answer) (*answer, error) {
	if *ans != nil {
		return *ans, nil
	}
	res, err := f(ctx)
	attempts := uint64(1)
	if n := it.msg.NumDelivered(); n >= claimedAt && claimedAt > 0 {
		attempts = n - claimedAt + 1
	}
	switch {
	case errors.Is(err, processor.ErrTransient) || errors.Is(err, context.DeadlineExceeded):
		w.metrics.processor.WithLabelValues("transient").Inc()
		if attempts <= uint64(len(w.cfg.RetrySchedule)) {
			it.retry = true
			return nil, nil
		}
		w.logger.WarnContext(ctx, "giving up on command after its last attempt", "type", it.cmd.Type, "charge_id", it.cmd.ChargeID, "attempts", attempts, "error", err)
		if err := w.store.InsertDeadLetters(ctx, []charge.DeadLetter{deadLetter(it.msg, err.Error(), w.now())}); err != nil {
			return nil, err
		}
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

// finish writes what the command's settlement causes: its event and ledger entries, the
// charge's and refunds' views, then publishes the event. When this delivery claimed the
// settlement, claimed and before hold it and the charge before it; otherwise (a
// redelivery, or a concurrent delivery that got there first) the whole log is read and
// everything it calls for is written again, which is a no-op where it was written.
func (w *Worker) finish(ctx context.Context, it *item, base, view charge.Charge, claimed []charge.Transition, before []charge.Charge) error {
	var (
		events  []charge.Event
		entries []charge.LedgerEntry
	)
	settled := false
	for i, t := range claimed {
		if t.Event.ID != "" {
			settled = true
			events = append(events, charge.NewEvent(view, t.Event))
		}
		entries = append(entries, charge.Entries(before[i], t)...)
	}
	if !settled {
		logs, err := w.store.TransitionsFrom(ctx, map[string]int{view.ID: 1})
		if err != nil {
			return err
		}
		ts := logs[view.ID]
		full := charge.Fold(base, ts)
		entries = charge.Ledger(base, ts)
		for _, t := range ts {
			if t.Event.ID != "" && owes(it.cmd, t) {
				events = append(events, charge.NewEvent(full, t.Event))
			}
		}
	}
	// Events and ledger before the views: whoever sees the charge moved finds them.
	if err := w.store.InsertEvents(ctx, events); err != nil {
		return err
	}
	if err := w.store.InsertLedgerEntries(ctx, entries); err != nil {
		return err
	}
	// A refund's document is written once it is settled, and a settled refund never
	// changes: every write of it is the same.
	if it.cmd.Type == charge.CommandRefund {
		var settledRefund []charge.Refund
		if r, ok := view.RefundByID(it.cmd.Refund.ID); ok && r.Status != charge.RefundPending {
			settledRefund = append(settledRefund, r)
		}
		if err := w.store.InsertRefunds(ctx, settledRefund); err != nil {
			return err
		}
	}
	if err := w.converge(ctx, map[string]charge.Charge{view.ID: view}); err != nil {
		return err
	}
	return w.events.PublishEvents(ctx, events)
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
