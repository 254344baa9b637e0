// Package processor is the payment processor boundary of docs/api.md: the simulated processor
// that decides by payment method, and the http processor that calls an external one. Every
// call carries an idempotency key, so repeating it after a crash charges once.
package processor

import (
	"errors"
	"fmt"
)

// AuthorizeRequest asks the processor to authorize (and, with Capture, capture) a charge.
// The charge id is the idempotency key.
type AuthorizeRequest struct {
	ChargeID      string `json:"charge_id"`
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	PaymentMethod string `json:"payment_method"`
	Capture       bool   `json:"capture"`
}

// CaptureRequest captures an authorized charge. "{charge id}:capture" is the idempotency key.
type CaptureRequest struct {
	ChargeID        string `json:"charge_id"`
	AuthorizationID string `json:"authorization_id"`
	Amount          int64  `json:"amount"`
}

// VoidRequest releases an authorization that was not captured. "{charge id}:void" is the
// idempotency key.
type VoidRequest struct {
	ChargeID        string `json:"charge_id"`
	AuthorizationID string `json:"authorization_id"`
}

// RefundRequest returns (part of) a captured amount. The refund id is the idempotency key.
type RefundRequest struct {
	ChargeID        string `json:"charge_id"`
	AuthorizationID string `json:"authorization_id"`
	RefundID        string `json:"refund_id"`
	Amount          int64  `json:"amount"`
}

// Result is the processor's answer: approved with a reference, or declined with a code.
type Result struct {
	Reference   string
	Approved    bool
	DeclineCode string
}

// Errors a processor call ends with besides an answer. Both are wrapped with detail.
var (
	// ErrTransient: no answer (5xx, 429, timeout, broken connection). Retry with the same
	// idempotency key.
	ErrTransient = errors.New("transient processor error")
	// ErrPermanent: the processor refused the request itself (a 4xx other than 429). The
	// charge fails with processing_error.
	ErrPermanent = errors.New("permanent processor error")
)

func transient(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTransient, fmt.Sprintf(format, args...))
}

func permanent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPermanent, fmt.Sprintf(format, args...))
}
