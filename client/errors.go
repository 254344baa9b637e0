package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Code is the code of an API error (the problem details' "code"). Each is also an error
// that matches, with errors.Is, any *Error that carries it.
type Code string

func (c Code) Error() string { return string(c) }

// The codes the API answers, with their status.
const (
	// 400: the body or the query is wrong; Error.Param names the field.
	ErrInvalidJSON      Code = "invalid_json"
	ErrParameterMissing Code = "parameter_missing"
	ErrParameterInvalid Code = "parameter_invalid"
	ErrParameterUnknown Code = "parameter_unknown"
	// 400: a POST without Idempotency-Key, or with one that is not 1-255 printable ASCII
	// characters.
	ErrIdempotencyKeyMissing Code = "idempotency_key_missing"
	ErrIdempotencyKeyInvalid Code = "idempotency_key_invalid"
	// 400: a card number in the body; send a payment method token (pm_…).
	ErrRawCardDataRejected Code = "raw_card_data_rejected"
	// 400: a capture or cancel of a charge not in requires_capture; a capture or refund
	// above what remains.
	ErrChargeNotCapturable Code = "charge_not_capturable"
	ErrChargeNotCancelable Code = "charge_not_cancelable"
	ErrAmountTooLarge      Code = "amount_too_large"
	// 400: a webhook URL that is not http(s), or that resolves to a private, loopback,
	// link-local or metadata address.
	ErrURLInvalid   Code = "url_invalid"
	ErrURLForbidden Code = "url_forbidden"
	// 401: no token, or one that fails verification.
	ErrUnauthenticated Code = "unauthenticated"
	// 403: the token lacks the route's scope.
	ErrInsufficientScope Code = "insufficient_scope"
	// 404: an unknown id, or another merchant's.
	ErrResourceMissing Code = "resource_missing"
	// 405: a known URL with a method it does not take.
	ErrMethodNotAllowed Code = "method_not_allowed"
	// 409: the first request with this idempotency key is still being executed; the
	// client retries it.
	ErrIdempotencyKeyInUse Code = "idempotency_key_in_use"
	// 409: another capture or cancel of the charge is accepted and not settled yet;
	// Error.RetryAfter says when to look again. Not retried: once the other settles, this
	// one may no longer apply.
	ErrOperationInProgress Code = "operation_in_progress"
	// 413: the body is over 64 KiB.
	ErrBodyTooLarge Code = "body_too_large"
	// 415: the body is not application/json.
	ErrUnsupportedMediaType Code = "unsupported_media_type"
	// 422: the idempotency key was used with another request; Error.Detail names what
	// differs.
	ErrIdempotencyKeyReused Code = "idempotency_key_reused"
	// 429: the merchant's rate limit; retried after Retry-After.
	ErrRateLimited Code = "rate_limited"
	// 500: an unexpected failure; quote Error.RequestID when you report it. Retried.
	ErrInternal Code = "internal_error"
	// 503: the queue or the store cannot take the request; nothing was accepted. Retried
	// after Retry-After.
	ErrUnavailable Code = "unavailable"
)

// Error is an answer of the API other than a success: RFC 9457 problem details.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is the API's code; empty when the answer was no problem details (from a proxy
	// in front of the API, say).
	Code Code
	// Param is the field, query parameter or header at fault, if one is.
	Param string
	// Detail says what was wrong, for people.
	Detail string
	// RetryAfter is the answer's Retry-After (429, 503, 409 operation_in_progress).
	RetryAfter time.Duration
	// RequestID is the server's id of the request, under which its log has the details.
	RequestID string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("billing API: %d", e.Status)
	if e.Code != "" {
		s += " " + string(e.Code)
	}
	if e.Param != "" {
		s += " (" + e.Param + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.RequestID != "" {
		s += " [" + e.RequestID + "]"
	}
	return s
}

// Is reports whether target is e's Code, so that errors.Is(err, client.ErrRateLimited)
// holds for a rate-limited answer.
func (e *Error) Is(target error) bool {
	c, ok := target.(Code)
	return ok && e.Code != "" && c == e.Code
}

// Retryable reports whether the same request may succeed later: a 5xx, a 429, or a 409
// idempotency_key_in_use. These are what the client retries.
func (e *Error) Retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Code == ErrIdempotencyKeyInUse
}

// decodeError reads a failed answer. A body that is no problem details leaves Code empty
// and, if it is short, becomes the Detail.
func decodeError(res *http.Response, body []byte) *Error {
	e := &Error{Status: res.StatusCode, RequestID: res.Header.Get("X-Request-Id"), RetryAfter: retryAfter(res.Header)}
	var p struct {
		Code   Code   `json:"code"`
		Param  string `json:"param"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		e.Code, e.Param, e.Detail = p.Code, p.Param, p.Detail
	} else if len(body) <= 200 {
		e.Detail = string(body)
	}
	return e
}

// retryAfter reads a Retry-After of seconds or an HTTP date; zero if none.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
