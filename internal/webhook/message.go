package webhook

import (
	"context"
	"time"
)

// Message is one delivery of a queued event or task.
type Message interface {
	Data() []byte
	Header(key string) string
	NumDelivered() uint64
	Ack(ctx context.Context) error
	NakWithDelay(d time.Duration) error
	// Later hands the message back to come again after d, without holding one of the
	// consumer's places for unacknowledged messages meanwhile; NumDelivered goes on
	// counting.
	Later(ctx context.Context, d time.Duration) error
	Term() error
	InProgress() error
}

// Source hands out messages; an empty batch means none arrived within wait.
type Source interface {
	Fetch(ctx context.Context, max int, wait time.Duration) ([]Message, error)
}

// MerchantHeader carries the merchant of an event on the EVENTS stream: the event's
// public JSON does not show it.
const MerchantHeader = "Billing-Merchant"
