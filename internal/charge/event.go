package charge

import "time"

// The event types of docs/api.md, "Events and webhooks".
const (
	EventChargeSucceeded  = "charge.succeeded"
	EventChargeFailed     = "charge.failed"
	EventChargeAuthorized = "charge.authorized"
	EventChargeCaptured   = "charge.captured"
	EventChargeCanceled   = "charge.canceled"
	EventChargeRefunded   = "charge.refunded"
	EventRefundFailed     = "refund.failed"
)

// authorizationEvent names the event of an authorization that leaves the charge in
// status to. (Captures, cancels and refunds name theirs where they are built.)
func authorizationEvent(to Status) string {
	switch to {
	case StatusSucceeded:
		return EventChargeSucceeded
	case StatusFailed:
		return EventChargeFailed
	case StatusRequiresCapture:
		return EventChargeAuthorized
	}
	return ""
}

// ObjectEvent is the object name of an event.
const ObjectEvent = "event"

// Event is the event object of docs/api.md. Sequence counts the events of one charge from 1.
type Event struct {
	ID        string    `json:"id"`
	Object    string    `json:"object"`
	Merchant  string    `json:"-"`
	Type      string    `json:"type"`
	ChargeID  string    `json:"-"`
	Sequence  int       `json:"sequence"`
	CreatedAt time.Time `json:"created_at"`
	Data      EventData `json:"data"`
}

// EventData is the payload of an event: the charge as the transition left it and, for
// charge.refunded and refund.failed, the refund.
type EventData struct {
	Object Charge  `json:"object"`
	Refund *Refund `json:"refund,omitempty"`
}

// NewEvent builds the event that ref records, with c as the transition left it as its
// object. It is deterministic: the same charge and ref give the same event, whichever
// worker builds it and whatever happened to the charge since.
func NewEvent(c Charge, ref EventRef) Event {
	obj := c.Public()
	obj.Events, obj.Refunds, obj.Operation = nil, nil, nil
	obj.Status = ref.Status
	obj.AmountCaptured = ref.AmountCaptured
	obj.AmountRefunded = ref.AmountRefunded
	obj.UpdatedAt = ref.CreatedAt.UTC()
	if ref.RefundID == "" {
		// The charge's own transition: its failure code is the event's. A refund's
		// failure code is the refund's (data.refund); the charge keeps its own, which
		// no longer changes once it has settled.
		obj.FailureCode, obj.FailureMessage = nil, nil
		if ref.FailureCode != "" {
			code, msg := ref.FailureCode, FailureMessage(ref.FailureCode)
			obj.FailureCode, obj.FailureMessage = &code, &msg
		}
	}
	var refund *Refund
	if r, ok := c.RefundByID(ref.RefundID); ok && ref.RefundID != "" {
		r = r.Public()
		refund = &r
	}
	return Event{
		ID:        ref.ID,
		Object:    ObjectEvent,
		Merchant:  c.Merchant,
		Type:      ref.Type,
		ChargeID:  c.ID,
		Sequence:  ref.Sequence,
		CreatedAt: ref.CreatedAt.UTC(),
		Data:      EventData{Object: obj, Refund: refund},
	}
}

// Public returns e ready to be shown to its merchant.
func (e Event) Public() Event {
	e.Object = ObjectEvent
	e.CreatedAt = e.CreatedAt.UTC()
	e.Data.Object = e.Data.Object.Public()
	if e.Data.Refund != nil {
		r := e.Data.Refund.Public()
		e.Data.Refund = &r
	}
	return e
}
