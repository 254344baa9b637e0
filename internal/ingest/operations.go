package ingest

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/billing/billing/internal/charge"
)

// Capture accepts the capture of amount of a merchant's requires_capture charge id, all
// that was authorized when p.Amount is nil: a capture command on the queue and, as 202
// body, the charge as it was read. p must be valid. One capture or cancel of a charge at a
// time: while one is accepted and not settled, another fails with
// charge.ErrOperationInProgress (seen in the charge's operation, or by the queue, which
// stores the command only while no other operation of the charge is stored), and nothing
// is stored under its key. The check against the charge is made
// for a new idempotency key only: a repeat of an accepted capture replays its answer
// whatever the charge has become since.
func (s *Charges) Capture(ctx context.Context, req Request, id string, p *charge.CaptureParams) (Response, error) {
	return s.Idempotency.SubmitChecked(ctx, req, func(ctx context.Context) (Response, Action, error) {
		c, err := s.Get(ctx, req.Merchant, id)
		if err != nil {
			return Response{}, Action{}, err
		}
		if c.Operation != nil {
			return Response{}, Action{}, charge.ErrOperationInProgress
		}
		amount := c.Amount
		if p.Amount != nil {
			amount = *p.Amount
		}
		if invalid := c.CheckCapture(amount); invalid != nil {
			return Response{}, Action{}, invalid
		}
		return s.accept(c, charge.Command{Type: charge.CommandCapture, Amount: amount})
	})
}

// Cancel accepts the cancel (void) of a merchant's requires_capture charge id, like
// Capture.
func (s *Charges) Cancel(ctx context.Context, req Request, id string) (Response, error) {
	return s.Idempotency.SubmitChecked(ctx, req, func(ctx context.Context) (Response, Action, error) {
		c, err := s.Get(ctx, req.Merchant, id)
		if err != nil {
			return Response{}, Action{}, err
		}
		if c.Operation != nil {
			return Response{}, Action{}, charge.ErrOperationInProgress
		}
		if invalid := c.CheckCancel(); invalid != nil {
			return Response{}, Action{}, invalid
		}
		return s.accept(c, charge.Command{Type: charge.CommandCancel})
	})
}

// accept completes cmd as a command on c, accepted now, and returns the 202 with c that
// answers it and the action that publishes it.
func (s *Charges) accept(c charge.Charge, cmd charge.Command) (Response, Action, error) {
	body, err := s.EncodeFunc(c.Public())
	if err != nil {
		return Response{}, Action{}, fmt.Errorf("encoding charge: %w", err)
	}
	cmd.ID = charge.NewID(charge.PrefixOperation)
	cmd.Merchant = c.Merchant
	cmd.ChargeID = c.ID
	cmd.AcceptedAt = s.NowFunc().UTC().Truncate(time.Millisecond)
	return Response{Status: http.StatusAccepted, Body: body}, NewAction(KindCommand, cmd), nil
}
