package charge

import (
	"errors"
	"fmt"
)

// Sentinel errors shared by every layer. Adapters translate their drivers' errors into
// these at the boundary; callers match them with errors.Is.
var (
	// ErrNotFound: no such object for this merchant (ids of other merchants included).
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the queue or store cannot take the request right now.
	ErrUnavailable = errors.New("unavailable")
	// ErrConflict: a conditional write lost to a concurrent one.
	ErrConflict = errors.New("conflict")
	// ErrRejected: the store or the queue refused a document or message for good (it
	// would refuse it again on every retry): a command that causes it is dead-lettered,
	// not retried for ever.
	ErrRejected = errors.New("rejected by the store")
	// ErrOperationInProgress: a capture or cancel of the charge is accepted and not
	// settled yet; one at a time per charge (docs/api.md, "Charges").
	ErrOperationInProgress = errors.New("an operation on the charge is in progress")
)

// The error codes of docs/api.md, "Errors", that the domain produces.
const (
	CodeInvalidJSON          = "invalid_json"
	CodeParameterMissing     = "parameter_missing"
	CodeParameterInvalid     = "parameter_invalid"
	CodeParameterUnknown     = "parameter_unknown"
	CodeRawCardDataRejected  = "raw_card_data_rejected"
	CodeIdempotencyMissing   = "idempotency_key_missing"
	CodeIdempotencyInvalid   = "idempotency_key_invalid"
	CodeIdempotencyInUse     = "idempotency_key_in_use"
	CodeIdempotencyReused    = "idempotency_key_reused"
	CodeChargeNotCapturable  = "charge_not_capturable"
	CodeChargeNotCancelable  = "charge_not_cancelable"
	CodeAmountTooLarge       = "amount_too_large"
	CodeOperationInProgress  = "operation_in_progress"
	CodeResourceMissing      = "resource_missing"
	CodeUnauthenticated      = "unauthenticated"
	CodeInsufficientScope    = "insufficient_scope"
	CodeRateLimited          = "rate_limited"
	CodeBodyTooLarge         = "body_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeUnavailable          = "unavailable"
	CodeURLInvalid           = "url_invalid"
	CodeURLForbidden         = "url_forbidden"
)

// InvalidRequestError is a request the caller must change before it can succeed: a 400
// with a code and, where one field is at fault, its name.
type InvalidRequestError struct {
	Code   string
	Param  string
	Detail string
}

func (e *InvalidRequestError) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Param, e.Detail)
	}
	return e.Code + ": " + e.Detail
}

// Invalid returns an InvalidRequestError for one parameter.
func Invalid(code, param, format string, args ...any) *InvalidRequestError {
	return &InvalidRequestError{Code: code, Param: param, Detail: fmt.Sprintf(format, args...)}
}
