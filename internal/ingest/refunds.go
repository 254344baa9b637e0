package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/billing/billing/internal/charge"
)

// RefundStore reads refunds a worker has written.
type RefundStore interface {
	GetRefund(ctx context.Context, merchant, id string) (charge.Refund, error)
	ListRefunds(ctx context.Context, merchant string, p charge.RefundListParams) ([]charge.Refund, bool, error)
}

// RefundLookup finds the accepted command of a refund that a worker may not have handled
// yet.
type RefundLookup interface {
	LookupRefund(ctx context.Context, refundID string) (charge.Command, error)
}

// Refunds is the ingest side of refunds: create, get, list.
type Refunds struct {
	Idempotency *Idempotency
	// Charges reads the charge a refund is of.
	Charges  *Charges
	Store    RefundStore
	Commands RefundLookup
	NowFunc  charge.TimeNow
	// EncodeFunc renders a refund as the API's response body.
	EncodeFunc func(charge.Refund) ([]byte, error)
}

// Create accepts a refund of a merchant's charge: a new id, the pending refund as 202
// body, a refund command on the queue, all under req's idempotency key. p must be valid.
// Like a capture, the refund is checked against the charge for a new key only: a repeat
// of an accepted refund replays its answer, even once the refund has used up the charge.
//
// A refund the charge can never cover is refused at once (amount_too_large); one that
// may be covered once the charge is captured is accepted and waits for it in the worker.
func (s *Refunds) Create(ctx context.Context, req Request, p *charge.RefundParams) (Response, error) {
	return s.Idempotency.SubmitChecked(ctx, req, func(ctx context.Context) (Response, Action, error) {
		c, err := s.Charges.Get(ctx, req.Merchant, *p.Charge)
		if errors.Is(err, charge.ErrNotFound) {
			return Response{}, Action{}, charge.Invalid(charge.CodeResourceMissing, "charge", "No such charge: %s", *p.Charge)
		}
		if err != nil {
			return Response{}, Action{}, err
		}
		amount, invalid := refundAmount(c, p.Amount)
		if invalid != nil {
			return Response{}, Action{}, invalid
		}
		if decision, invalid := c.CheckRefund(amount); decision == charge.RefundRefuse {
			return Response{}, Action{}, invalid
		}
		// Milliseconds: what the store keeps, so the 202 body and later reads agree.
		now := s.NowFunc().UTC().Truncate(time.Millisecond)
		r := charge.Refund{
			ID:        charge.NewID(charge.PrefixRefund),
			Merchant:  req.Merchant,
			Charge:    c.ID,
			Amount:    amount,
			Currency:  c.Currency,
			Status:    charge.RefundPending,
			Reason:    p.Reason,
			CreatedAt: now,
			UpdatedAt: now,
		}
		body, err := s.EncodeFunc(r.Public())
		if err != nil {
			return Response{}, Action{}, fmt.Errorf("encoding refund: %w", err)
		}
		cmd := charge.Command{
			Type:       charge.CommandRefund,
			Merchant:   req.Merchant,
			ChargeID:   c.ID,
			AcceptedAt: now,
			Refund:     &r,
		}
		return Response{Status: http.StatusAccepted, Body: body}, NewAction(KindCommand, cmd), nil
	})
}

// refundAmount is the amount a refund of c asks for: the amount given or, without one,
// the rest of what was captured, which only a captured charge knows.
func refundAmount(c charge.Charge, amount *int64) (int64, *charge.InvalidRequestError) {
	switch {
	case amount != nil:
		return *amount, nil
	case c.Status == charge.StatusPending || c.Status == charge.StatusRequiresCapture:
		return 0, charge.Invalid(charge.CodeParameterMissing, "amount", "amount is required until the charge is captured")
	case c.Status == charge.StatusSucceeded && c.Refundable() > 0:
		return c.Refundable(), nil
	}
	return 0, charge.Invalid(charge.CodeAmountTooLarge, "amount", "charge %s (%s) has nothing left to refund", c.ID, c.Status)
}

// Get returns a merchant's refund. Like a charge, a refund is readable from the moment
// its 202 was sent: before a worker has stored it, it is read from its accepted command,
// and the store is asked again after a miss on the queue (see Charges.Get).
func (s *Refunds) Get(ctx context.Context, merchant, id string) (charge.Refund, error) {
	if !charge.ValidID(charge.PrefixRefund, id) {
		return charge.Refund{}, charge.ErrNotFound
	}
	r, err := s.Store.GetRefund(ctx, merchant, id)
	if !errors.Is(err, charge.ErrNotFound) {
		return r, err
	}
	cmd, err := s.Commands.LookupRefund(ctx, id)
	switch {
	case err == nil && cmd.Merchant == merchant && cmd.Type == charge.CommandRefund && cmd.Refund != nil && cmd.Refund.ID == id:
		return cmd.PendingRefund(), nil
	case err == nil, errors.Is(err, charge.ErrNotFound):
		return s.Store.GetRefund(ctx, merchant, id)
	default:
		return charge.Refund{}, err
	}
}

// List returns a page of a merchant's refunds, newest first. The refunds of one charge
// are read from the charge, which holds every refund a worker has taken up, pending ones
// included: one read by id, where the refunds collection holds settled refunds only and
// is searched by a filter (which FerretDB answers by decoding every document). A charge
// the merchant does not have has no refunds.
func (s *Refunds) List(ctx context.Context, merchant string, p charge.RefundListParams) ([]charge.Refund, bool, error) {
	if p.Charge == "" {
		return s.Store.ListRefunds(ctx, merchant, p)
	}
	c, err := s.Charges.Get(ctx, merchant, p.Charge)
	if errors.Is(err, charge.ErrNotFound) {
		return []charge.Refund{}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	page, more := p.Page(c.Refunds)
	return page, more, nil
}
