package client

import (
	"context"
	"iter"
	"net/url"
	"strconv"
	"time"
)

// Status is the status of a charge or a refund.
type Status string

// Statuses. A charge moves from pending to succeeded, failed or requires_capture, and from
// requires_capture to succeeded (captured) or canceled; a refund from pending to
// succeeded or failed.
const (
	StatusPending         Status = "pending"
	StatusSucceeded       Status = "succeeded"
	StatusFailed          Status = "failed"
	StatusRequiresCapture Status = "requires_capture"
	StatusCanceled        Status = "canceled"
)

// Charge is a charge. Amounts are in the currency's minor unit (cents for usd).
type Charge struct {
	ID             string `json:"id"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	PaymentMethod  string `json:"payment_method"`
	Capture        bool   `json:"capture"`
	Status         Status `json:"status"`
	AmountCaptured int64  `json:"amount_captured"`
	AmountRefunded int64  `json:"amount_refunded"`
	// FailureCode is set once the charge failed: card_declined, insufficient_funds,
	// expired_card or processing_error; FailureMessage says it for people.
	FailureCode    string            `json:"failure_code"`
	FailureMessage string            `json:"failure_message"`
	Description    string            `json:"description"`
	Customer       string            `json:"customer"`
	Metadata       map[string]string `json:"metadata"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
}

// ChargeParams is a charge to create.
type ChargeParams struct {
	// Amount, from 1 to 99,999,999 in the currency's minor unit; required.
	Amount int64 `json:"amount,omitempty"`
	// Currency is an ISO 4217 code such as "usd"; required.
	Currency string `json:"currency,omitempty"`
	// PaymentMethod is a payment method token (pm_…); required.
	PaymentMethod string `json:"payment_method,omitempty"`
	// Capture false only authorizes: the charge then waits in requires_capture for
	// CaptureCharge or CancelCharge. Nil captures at once.
	Capture     *bool             `json:"capture,omitempty"`
	Description string            `json:"description,omitempty"`
	Customer    string            `json:"customer,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// CreateCharge submits a charge. The answer is the charge in status pending, durably
// queued; WaitCharge tells how it settled.
func (c *Client) CreateCharge(ctx context.Context, p ChargeParams, opts ...RequestOption) (*Charge, error) {
	return post[Charge](ctx, c, "/v1/charges", p, opts)
}

// GetCharge returns the charge id.
func (c *Client) GetCharge(ctx context.Context, id string, opts ...RequestOption) (*Charge, error) {
	return get[Charge](ctx, c, "/v1/charges/"+url.PathEscape(id), nil, opts)
}

// maxWait is the longest one long poll may ask for.
const maxWait = 60 * time.Second

// WaitCharge returns the charge id once it is no longer pending, or as it is after d (or
// when ctx ends first, with ctx's error). It holds requests open (GET ?wait=) rather than
// polling; when the server answers a long poll early (it holds a bounded number per
// merchant), it asks again after a short pause.
func (c *Client) WaitCharge(ctx context.Context, id string, d time.Duration, opts ...RequestOption) (*Charge, error) {
	deadline := time.Now().Add(d)
	pause := 100 * time.Millisecond
	for {
		left := min(time.Until(deadline), maxWait).Truncate(time.Millisecond)
		q := url.Values{}
		if left > 0 {
			q.Set("wait", left.String())
		}
		asked := time.Now()
		ch, err := get[Charge](ctx, c, "/v1/charges/"+url.PathEscape(id), q, opts)
		if err != nil || ch.Status != StatusPending || time.Until(deadline) <= 0 {
			return ch, err
		}
		if time.Since(asked) < left/2 { // answered early: do not spin
			t := time.NewTimer(min(pause, time.Until(deadline)))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
			pause = min(2*pause, 2*time.Second)
		}
	}
}

// ListParams pages through a list.
type ListParams struct {
	// Limit is how many objects each page asks for, 1 to 100; 0 takes the API's default
	// (10).
	Limit int
	// StartingAfter starts the list after this object's id.
	StartingAfter string
}

func (p ListParams) query() url.Values {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("starting_after", p.StartingAfter)
	}
	return q
}

// ListChargesParams filters and pages the list of charges.
type ListChargesParams struct {
	ListParams
	// Status lists only the charges in this status.
	Status Status
}

// ListCharges yields the merchant's charges, newest first, fetching page after page. It
// stops after the first error, which it yields.
func (c *Client) ListCharges(ctx context.Context, p ListChargesParams) iter.Seq2[Charge, error] {
	q := p.query()
	if p.Status != "" {
		q.Set("status", string(p.Status))
	}
	return list(ctx, c, "/v1/charges", q, func(ch Charge) string { return ch.ID })
}

// CaptureParams is a capture.
type CaptureParams struct {
	// Amount captures part of the authorization; 0 captures all of it.
	Amount int64 `json:"amount,omitempty"`
}

// CaptureCharge captures an authorized charge (in requires_capture). The answer is the
// charge as it was accepted; it is succeeded once a worker has captured it.
func (c *Client) CaptureCharge(ctx context.Context, id string, p CaptureParams, opts ...RequestOption) (*Charge, error) {
	return post[Charge](ctx, c, "/v1/charges/"+url.PathEscape(id)+"/capture", p, opts)
}

// CancelCharge voids an authorized charge (in requires_capture). The answer is the
// charge as it was accepted; it is canceled once a worker has voided it.
func (c *Client) CancelCharge(ctx context.Context, id string, opts ...RequestOption) (*Charge, error) {
	return post[Charge](ctx, c, "/v1/charges/"+url.PathEscape(id)+"/cancel", struct{}{}, opts)
}
