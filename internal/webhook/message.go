package webhook

import "github.com/billing/billing/internal/consume"

// Message is one delivery of a queued event or task.
type Message = consume.Message

// Source hands out messages; an empty batch means none arrived within wait.
type Source = consume.Source

// MerchantHeader carries the merchant of an event on the EVENTS stream: the event's
// public JSON does not show it.
const MerchantHeader = "Billing-Merchant"
