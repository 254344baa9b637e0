// Package charge is the domain of the billing processor: charges, their statuses and the
// transitions between them, events, and the errors every other package speaks in. It imports
// nothing of ours.
package charge

import "time"

// Status is where a charge is in its life. It moves only forward (see CanTransition).
type Status string

// The statuses of docs/api.md, "Charges".
const (
	StatusPending         Status = "pending"
	StatusSucceeded       Status = "succeeded"
	StatusFailed          Status = "failed"
	StatusRequiresCapture Status = "requires_capture"
	StatusCanceled        Status = "canceled"
)

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusSucceeded, StatusFailed, StatusRequiresCapture, StatusCanceled:
		return true
	}
	return false
}

// CanTransition reports whether a charge may move from one status to another.
func CanTransition(from, to Status) bool {
	switch from {
	case StatusPending:
		return to == StatusSucceeded || to == StatusFailed || to == StatusRequiresCapture
	case StatusRequiresCapture:
		return to == StatusSucceeded || to == StatusCanceled
	}
	return false
}

// The failure codes a charge can end with.
const (
	FailureCardDeclined      = "card_declined"
	FailureInsufficientFunds = "insufficient_funds"
	FailureExpiredCard       = "expired_card"
	FailureProcessingError   = "processing_error"
)

// FailureMessage is the human-readable text for a failure code.
func FailureMessage(code string) string {
	switch code {
	case FailureCardDeclined:
		return "Your card was declined."
	case FailureInsufficientFunds:
		return "Your card has insufficient funds."
	case FailureExpiredCard:
		return "Your card has expired."
	case FailureProcessingError:
		return "An error occurred while processing your card. Try again later."
	}
	return "The payment failed."
}

// Metadata is a charge's set of key-value pairs (docs/api.md, "Charges"). Its keys are any
// printable text: a store that cannot take them as field names stores it otherwise.
type Metadata map[string]string

// Charge is the charge object of docs/api.md. The JSON form is the public one; fields tagged
// json:"-" are internal. Merchant scopes every read.
type Charge struct {
	ID             string    `json:"id"`
	Object         string    `json:"object"`
	Merchant       string    `json:"-"`
	Amount         int64     `json:"amount"`
	Currency       string    `json:"currency"`
	PaymentMethod  string    `json:"payment_method"`
	Capture        bool      `json:"capture"`
	Status         Status    `json:"status"`
	AmountCaptured int64     `json:"amount_captured"`
	AmountRefunded int64     `json:"amount_refunded"`
	FailureCode    *string   `json:"failure_code"`
	FailureMessage *string   `json:"failure_message"`
	Description    *string   `json:"description"`
	Customer       *string   `json:"customer"`
	Metadata       Metadata  `json:"metadata"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`

	// AuthorizationID is the processor's reference for the authorization.
	AuthorizationID string `json:"-"`
	// Events are the events this charge's transitions wrote, in sequence order. Each is
	// recorded in the same update as its transition, so that a redelivered command finds
	// the event id it must write and publish (docs/design.md, rules 1 and 3).
	Events []EventRef `json:"-"`
	// Version is the number of transitions the charge has been through: the sequence of
	// the last. Writes of the charge are conditional on it (see Transition).
	Version int64 `json:"-"`
	// Operation is the capture or cancel under way, claimed and not yet settled.
	Operation *Operation `json:"-"`
	// Ended are the kinds of the operations settled so far (capture_requested,
	// cancel_requested), declined ones included: each is made once per charge, since the
	// processor's key for it is the charge's.
	Ended []TransitionKind `json:"-"`
	// Refunds are the charge's refunds that a worker has reserved or refused, in the
	// order of its history.
	Refunds []Refund `json:"-"`
}

// ObjectCharge is the object name of a charge.
const ObjectCharge = "charge"

// EventRef records one event of a charge inside the charge itself, with the state the
// transition left the charge in, so that the event can be rebuilt exactly, even after
// later transitions.
type EventRef struct {
	ID             string
	Type           string
	Sequence       int
	CreatedAt      time.Time
	Status         Status
	AmountCaptured int64
	AmountRefunded int64
	FailureCode    string
	// RefundID names the refund of a charge.refunded or refund.failed event.
	RefundID string
}

// Public returns c ready to be shown to its merchant: object name set, UTC times, metadata
// never null.
func (c Charge) Public() Charge {
	c.Object = ObjectCharge
	c.CreatedAt = c.CreatedAt.UTC()
	c.UpdatedAt = c.UpdatedAt.UTC()
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	return c
}
