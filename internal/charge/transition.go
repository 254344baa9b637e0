package charge

import (
	"slices"
	"strconv"
	"time"
)

// Transition is one step of a charge, the unit of the charge's history. Transitions are
// stored in a log of their own, each under an id made of the charge id and its sequence
// number, so that of two workers deciding the same step of the same charge exactly one
// wins: the insert of a given id succeeds once, on MongoDB and on FerretDB alike. The
// charge document is a view folded from its transitions (Fold); a writer that finds the
// view behind the log writes the fold again, which is idempotent.
//
// A step that calls the processor after the charge was decided (capture, cancel, refund)
// takes two transitions: an intent, claimed before the call, and its settlement, claimed
// after the answer. The intent is what orders commands on one charge: whoever claims the
// next sequence first goes first, and every later command sees it (a pending refund
// reserves its amount; a capture finds a cancel already under way and is refused).
type Transition struct {
	ID       string
	ChargeID string
	Sequence int
	Kind     TransitionKind
	From     Status
	To       Status
	At       time.Time
	// AmountCaptured is the charge's captured amount after the transition.
	AmountCaptured int64
	// Amount is what a capture or refund transition concerns.
	Amount int64
	// AuthorizationID is the processor's reference for the authorization.
	AuthorizationID string
	// Reference is the processor's reference for a capture, void or refund.
	Reference   string
	FailureCode string
	// Refund is the refund a refund_reserved transition reserves, or a refund_failed one
	// refuses without a reservation, as it was accepted; RefundID names the refund of
	// the other refund transitions.
	Refund   *Refund
	RefundID string
	// Delivery is, for an intent, the attempt number of the command that claimed it (its
	// waits uncounted): the attempts at the processor call are counted from there.
	Delivery uint64
	// Operation is, for the intent of a capture or cancel, the id of the command that
	// claimed it (Command.ID): its ingest tells its own from another's by it.
	Operation string
	// Event is the event the transition writes; its ID is empty for an intent.
	Event EventRef
}

// TransitionKind names what a transition does.
type TransitionKind string

// The kinds of transition.
const (
	// KindAuthorization decides a pending charge: succeeded, failed or requires_capture.
	KindAuthorization TransitionKind = "authorization"
	// KindCaptureRequested and KindCancelRequested are intents on a requires_capture
	// charge; KindCaptured, KindCanceled settle them, KindCaptureFailed and
	// KindCancelFailed give them up with the charge still requires_capture.
	KindCaptureRequested TransitionKind = "capture_requested"
	KindCaptured         TransitionKind = "captured"
	KindCaptureFailed    TransitionKind = "capture_failed"
	KindCancelRequested  TransitionKind = "cancel_requested"
	KindCanceled         TransitionKind = "canceled"
	KindCancelFailed     TransitionKind = "cancel_failed"
	// KindRefundReserved is the intent of a refund; KindRefunded and KindRefundFailed
	// settle it. KindRefundFailed also refuses a refund that could not be reserved.
	KindRefundReserved TransitionKind = "refund_reserved"
	KindRefunded       TransitionKind = "refunded"
	KindRefundFailed   TransitionKind = "refund_failed"
)

// TransitionID is the id of the sequence-th transition of a charge.
func TransitionID(chargeID string, sequence int) string {
	return chargeID + "/" + strconv.Itoa(sequence)
}

// next returns the skeleton of c's next transition of kind at time at, leaving the
// charge's status and amounts as they are.
func (c Charge) next(kind TransitionKind, at time.Time) Transition {
	seq := int(c.Version) + 1
	return Transition{
		ID:              TransitionID(c.ID, seq),
		ChargeID:        c.ID,
		Sequence:        seq,
		Kind:            kind,
		From:            c.Status,
		To:              c.Status,
		At:              at.UTC().Truncate(time.Millisecond),
		AmountCaptured:  c.AmountCaptured,
		AuthorizationID: c.AuthorizationID,
	}
}

// withEvent gives t the event of type typ, numbered after c's events, with the state t
// leaves the charge in.
func (c Charge) withEvent(t Transition, typ string, amountRefunded int64) Transition {
	t.Event = EventRef{
		ID:             NewID(PrefixEvent),
		Type:           typ,
		Sequence:       len(c.Events) + 1,
		CreatedAt:      t.At,
		Status:         t.To,
		AmountCaptured: t.AmountCaptured,
		AmountRefunded: amountRefunded,
		FailureCode:    t.FailureCode,
		RefundID:       t.RefundID,
	}
	return t
}

// NewTransition builds the authorization of pending charge c, to status to, with the
// event it writes. amountCaptured and failureCode are the new values (zero and empty
// where they do not apply); authorizationID is the processor's reference, if any.
func NewTransition(c Charge, to Status, at time.Time, amountCaptured int64, failureCode, authorizationID string) Transition {
	t := c.next(KindAuthorization, at)
	t.To = to
	t.AmountCaptured = amountCaptured
	t.AuthorizationID = authorizationID
	t.FailureCode = failureCode
	return c.withEvent(t, authorizationEvent(to), c.AmountRefunded)
}

// RequestCapture is the intent to capture amount of c; delivery is the attempt number
// of the command that claims it. c.CheckCapture(amount) must have passed.
func (c Charge) RequestCapture(at time.Time, amount int64, delivery uint64) Transition {
	t := c.next(KindCaptureRequested, at)
	t.Amount, t.Delivery = amount, delivery
	return t
}

// RequestCancel is the intent to cancel c. c.CheckCancel() must have passed.
func (c Charge) RequestCancel(at time.Time, delivery uint64) Transition {
	t := c.next(KindCancelRequested, at)
	t.Delivery = delivery
	return t
}

// Settle is the transition that ends c's capture or cancel under way (c.Operation) with
// the processor's answer: approved with its reference, or refused with failureCode.
func (c Charge) Settle(at time.Time, approved bool, reference, failureCode string) Transition {
	op := c.Operation
	switch {
	case op == nil:
		panic("charge: Settle without an operation under way")
	case !approved && op.Kind == KindCaptureRequested:
		t := c.next(KindCaptureFailed, at)
		t.FailureCode = failureCode
		return t
	case !approved:
		t := c.next(KindCancelFailed, at)
		t.FailureCode = failureCode
		return t
	case op.Kind == KindCaptureRequested:
		t := c.next(KindCaptured, at)
		t.To, t.AmountCaptured, t.Amount, t.Reference = StatusSucceeded, op.Amount, op.Amount, reference
		return c.withEvent(t, EventChargeCaptured, c.AmountRefunded)
	default:
		t := c.next(KindCanceled, at)
		t.To, t.Reference = StatusCanceled, reference
		return c.withEvent(t, EventChargeCanceled, c.AmountRefunded)
	}
}

// ReserveRefund is the intent of refund r, which c.CheckRefund(r.Amount) allowed.
func (c Charge) ReserveRefund(at time.Time, r Refund, delivery uint64) Transition {
	t := c.next(KindRefundReserved, at)
	r.Status, r.FailureCode, r.Delivery = RefundPending, nil, delivery
	t.Refund, t.RefundID, t.Amount, t.Delivery = &r, r.ID, r.Amount, delivery
	return t
}

// RefundSucceeded settles c's reserved refund id with the processor's reference.
func (c Charge) RefundSucceeded(at time.Time, id, reference string) Transition {
	r, _ := c.RefundByID(id)
	t := c.next(KindRefunded, at)
	t.RefundID, t.Amount, t.Reference = id, r.Amount, reference
	return c.withEvent(t, EventChargeRefunded, c.AmountRefunded+r.Amount)
}

// RefundFailed fails refund r of c with code: a reserved refund the processor refused,
// or one that could not be reserved at all (it is then recorded with the transition).
func (c Charge) RefundFailed(at time.Time, r Refund, code string) Transition {
	t := c.next(KindRefundFailed, at)
	t.RefundID, t.Amount, t.FailureCode = r.ID, r.Amount, code
	if _, reserved := c.RefundByID(r.ID); !reserved {
		r.Status, r.FailureCode = RefundPending, nil
		t.Refund = &r
	}
	return c.withEvent(t, EventRefundFailed, c.AmountRefunded)
}

// Apply returns c after t. t must be c's next transition.
func (c Charge) Apply(t Transition) Charge {
	c.Status = t.To
	c.UpdatedAt = t.At
	c.AmountCaptured = t.AmountCaptured
	if t.AuthorizationID != "" {
		c.AuthorizationID = t.AuthorizationID
	}
	switch t.Kind {
	case KindAuthorization, "": // "": logged before transitions had kinds
		if t.FailureCode != "" {
			code, msg := t.FailureCode, FailureMessage(t.FailureCode)
			c.FailureCode, c.FailureMessage = &code, &msg
		}
	case KindCaptureRequested, KindCancelRequested:
		c.Operation = &Operation{Kind: t.Kind, Amount: t.Amount, Delivery: t.Delivery}
	case KindCaptured, KindCanceled, KindCaptureFailed, KindCancelFailed:
		if c.Operation != nil {
			c.Ended = append(slices.Clip(c.Ended), c.Operation.Kind)
		}
		c.Operation = nil
	case KindRefundReserved:
		c.Refunds = append(c.Refunds, t.Refund.settled(RefundPending, t, ""))
	case KindRefunded:
		c.AmountRefunded += t.Amount
		c.setRefund(t, RefundSucceeded, "")
	case KindRefundFailed:
		if t.Refund != nil {
			c.Refunds = append(c.Refunds, t.Refund.settled(RefundFailed, t, t.FailureCode))
		} else {
			c.setRefund(t, RefundFailed, t.FailureCode)
		}
	}
	if t.Event.ID != "" {
		c.Events = append(c.Events, t.Event)
	}
	c.Version = int64(t.Sequence)
	return c
}

// setRefund moves c's refund t.RefundID to status, with a copy of the refunds so that
// views folded earlier keep theirs.
func (c *Charge) setRefund(t Transition, status RefundStatus, code string) {
	c.Refunds = append([]Refund(nil), c.Refunds...)
	for i := range c.Refunds {
		if c.Refunds[i].ID == t.RefundID {
			c.Refunds[i] = c.Refunds[i].settled(status, t, code)
		}
	}
}

// Fold returns the charge that ts, the transitions of c in sequence order, make of c as
// it was accepted. It stops at the first gap in the sequence.
func Fold(c Charge, ts []Transition) Charge {
	c.Status = StatusPending
	c.UpdatedAt = c.CreatedAt
	c.AmountCaptured, c.AmountRefunded = 0, 0
	c.FailureCode, c.FailureMessage = nil, nil
	c.AuthorizationID = ""
	c.Events, c.Refunds, c.Operation, c.Ended = nil, nil, nil, nil
	c.Version = 0
	for _, t := range ts {
		if t.ChargeID != c.ID || t.Sequence != int(c.Version)+1 {
			break
		}
		c = c.Apply(t)
	}
	return c
}

// ListParams selects a page of a merchant's charges: newest first, strictly older than
// StartingAfter when it is set, only Status when it is set.
type ListParams struct {
	Limit         int
	StartingAfter string
	Status        Status
	// Customer, when set, lists only the charges made with this customer.
	Customer string
}

// DeadLetter records a message that was given up on (a command after its last attempt,
// or any message that can never be handled), so that an operator can see what happened,
// replay it, and nothing disappears silently.
type DeadLetter struct {
	ID       string // the message's, the same on each of its deliveries: a command's subject
	Subject  string
	Data     []byte
	Headers  map[string]string // the message's own headers, for a replay
	Reason   string
	Attempts uint64 // deliveries
	At       time.Time
}
