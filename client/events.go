package client

import (
	"context"
	"iter"
	"net/url"
	"time"
)

// The event types: one event for every change of a charge's or a refund's status.
const (
	EventChargeSucceeded  = "charge.succeeded"
	EventChargeFailed     = "charge.failed"
	EventChargeAuthorized = "charge.authorized" // now requires_capture
	EventChargeCaptured   = "charge.captured"
	EventChargeCanceled   = "charge.canceled"
	EventChargeRefunded   = "charge.refunded" // a refund succeeded; Data.Refund is it
	EventRefundFailed     = "refund.failed"
	// EventAll subscribes a webhook endpoint to every type.
	EventAll = "*"
)

// Event is a change of a charge: what webhooks deliver and ListEvents lists.
type Event struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Sequence counts the events of one charge from 1: deliveries are not ordered, and a
	// gap shows one not yet received.
	Sequence  int       `json:"sequence"`
	CreatedAt time.Time `json:"created_at"`
	Data      struct {
		// Object is the charge as the change left it.
		Object Charge `json:"object"`
		// Refund is the refund of a charge.refunded or refund.failed event.
		Refund *Refund `json:"refund,omitempty"`
	} `json:"data"`
}

// GetEvent returns the event id.
func (c *Client) GetEvent(ctx context.Context, id string, opts ...RequestOption) (*Event, error) {
	return get[Event](ctx, c, "/v1/events/"+url.PathEscape(id), nil, opts)
}

// ListEventsParams filters and pages the list of events.
type ListEventsParams struct {
	ListParams
	// Type lists only the events of this type.
	Type string
}

// ListEvents yields the merchant's events of the last 30 days, newest first, fetching
// page after page. It stops after the first error, which it yields.
func (c *Client) ListEvents(ctx context.Context, p ListEventsParams) iter.Seq2[Event, error] {
	q := p.query()
	if p.Type != "" {
		q.Set("type", p.Type)
	}
	return list(ctx, c, "/v1/events", q, func(e Event) string { return e.ID })
}

// RedeliverParams says where to send an event again.
type RedeliverParams struct {
	// Endpoint is the webhook endpoint to send to; empty sends to every enabled endpoint
	// that subscribes to the event's type.
	Endpoint string `json:"endpoint,omitempty"`
}

// RedeliverEvent sends the event id again and returns it.
func (c *Client) RedeliverEvent(ctx context.Context, id string, p RedeliverParams, opts ...RequestOption) (*Event, error) {
	return post[Event](ctx, c, "/v1/events/"+url.PathEscape(id)+"/redeliver", p, opts)
}
