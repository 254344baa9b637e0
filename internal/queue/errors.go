package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billing/billing/internal/charge"
)

// Sentinel errors of the queue. Every failure to reach NATS also matches
// charge.ErrUnavailable; no nats.go error type is exposed.
var (
	// ErrNotAccepted: a publish certainly did not store the message (nothing was sent, or
	// the server answered with a refusal). Returned together with charge.ErrUnavailable.
	ErrNotAccepted = errors.New("publish not accepted")
	// ErrPublishUncertain: a publish was sent but no acknowledgement came back, so the
	// message may or may not be stored. Returned together with charge.ErrUnavailable.
	ErrPublishUncertain = errors.New("publish outcome unknown")
	// ErrFull: CHARGES holds as many bytes as it may (Config.ChargesMaxBytes) until the
	// workers drain it. Returned together with ErrNotAccepted and charge.ErrUnavailable.
	ErrFull = errors.New("queue full")
	// ErrInvalid: an id, key or type cannot be part of a NATS subject (empty, or holding
	// '.', '*', '>', whitespace or control characters), or an argument is out of range.
	// It is the caller's mistake: retrying will not help.
	ErrInvalid = errors.New("invalid queue input")
)

// PublishOutcomeUnknown reports whether err is a publish failure after which the message
// may nevertheless be stored: an idempotency claim for it must be kept, not released.
func PublishOutcomeUnknown(err error) bool {
	return errors.Is(err, ErrPublishUncertain)
}

// unavailable wraps err, a NATS failure, so that it matches charge.ErrUnavailable (and
// context.Canceled or context.DeadlineExceeded where that was the cause) without exposing
// the nats.go error itself.
func unavailable(what string, err error, marks ...error) error {
	wrapped := []error{charge.ErrUnavailable}
	wrapped = append(wrapped, marks...)
	switch {
	case errors.Is(err, context.Canceled):
		wrapped = append(wrapped, context.Canceled)
	case errors.Is(err, context.DeadlineExceeded):
		wrapped = append(wrapped, context.DeadlineExceeded)
	}
	return &queueError{what: what, msg: err.Error(), is: wrapped}
}

// queueError is a NATS failure translated at the boundary: its text is kept, its type is
// not.
type queueError struct {
	what string
	msg  string
	is   []error
}

func (e *queueError) Error() string {
	s := e.what + ": "
	for _, m := range e.is {
		if m == context.Canceled || m == context.DeadlineExceeded {
			continue
		}
		s += m.Error() + ": "
	}
	return s + e.msg
}

func (e *queueError) Unwrap() []error { return e.is }

// publishError translates the error of a synchronous publish attempted while sentBefore
// was false (the request had certainly not been sent when the check ran). It sorts the
// failure into ErrNotAccepted or ErrPublishUncertain.
func publishError(what string, err error) error {
	if notSent(err) {
		return unavailable(what, err, ErrNotAccepted)
	}
	return unavailable(what, err, ErrPublishUncertain)
}

// notSent reports whether a publish that failed with err certainly did not store its
// message. Anything not known to be a refusal or a failure before sending counts as
// uncertain: keeping a claim that was not needed costs a retry, releasing one that was
// needed risks a second charge.
func notSent(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		// The stream answered with an error instead of a PubAck: nothing was stored.
		return true
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		// No stream listens on the subject: the server dropped the message.
		return true
	case errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrMaxPayload),
		errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrInvalidConnection),
		errors.Is(err, nats.ErrInvalidMsg),
		errors.Is(err, nats.ErrInvalidContext),
		errors.Is(err, nats.ErrHeadersNotSupported),
		errors.Is(err, jetstream.ErrInvalidOption):
		// Refused by the client before anything was written. (ErrConnectionClosed is not
		// here: nats.go returns it both before sending and when the connection closes
		// while waiting for the reply. Conn checks for a closed connection itself first.)
		return true
	}
	return false
}

// invalid returns an ErrInvalid error about one value.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// apiErrorCode is the JetStream error code of err, 0 if it has none.
func apiErrorCode(err error) jetstream.ErrorCode {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode
	}
	return 0
}
