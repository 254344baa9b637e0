package client

import (
	"context"
	"iter"
	"net/url"
	"time"
)

// Refund is a refund of a captured charge.
type Refund struct {
	ID       string `json:"id"`
	Charge   string `json:"charge"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	// Status is pending, then succeeded or failed.
	Status Status `json:"status"`
	// FailureCode says why a refund failed (amount_too_large, processing_error).
	FailureCode string    `json:"failure_code"`
	Reason      string    `json:"reason"`
	CreatedAt   time.Time `json:"created_at"`
}

// Refund reasons.
const (
	ReasonDuplicate           = "duplicate"
	ReasonFraudulent          = "fraudulent"
	ReasonRequestedByCustomer = "requested_by_customer"
)

// RefundParams is a refund to create.
type RefundParams struct {
	// Charge is the id of the charge to refund; required.
	Charge string `json:"charge,omitempty"`
	// Amount refunds part of what was captured; 0 refunds all that remains.
	Amount int64 `json:"amount,omitempty"`
	// Reason is one of the Reason constants, or empty.
	Reason string `json:"reason,omitempty"`
}

// CreateRefund refunds a charge. The answer is the refund in status pending; one of a
// charge not captured yet waits for the capture.
func (c *Client) CreateRefund(ctx context.Context, p RefundParams, opts ...RequestOption) (*Refund, error) {
	return post[Refund](ctx, c, "/v1/refunds", p, opts)
}

// GetRefund returns the refund id.
func (c *Client) GetRefund(ctx context.Context, id string, opts ...RequestOption) (*Refund, error) {
	return get[Refund](ctx, c, "/v1/refunds/"+url.PathEscape(id), nil, opts)
}

// ListRefundsParams filters and pages the list of refunds.
type ListRefundsParams struct {
	ListParams
	// Charge lists only the refunds of this charge.
	Charge string
}

// ListRefunds yields the merchant's refunds, newest first, fetching page after page. It
// stops after the first error, which it yields.
func (c *Client) ListRefunds(ctx context.Context, p ListRefundsParams) iter.Seq2[Refund, error] {
	q := p.query()
	if p.Charge != "" {
		q.Set("charge", p.Charge)
	}
	return list(ctx, c, "/v1/refunds", q, func(r Refund) string { return r.ID })
}
