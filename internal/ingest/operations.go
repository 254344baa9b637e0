package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	cmd.Version = c.Version
	cmd.AcceptedAt = s.NowFunc().UTC().Truncate(time.Millisecond)
	return Response{Status: http.StatusAccepted, Body: body}, NewAction(KindOperation, cmd), nil
}

// KindOperation is the action that puts a capture or cancel on the queue.
const KindOperation = "operation"

// OperationPublisher stores capture and cancel commands, one per charge at a time.
type OperationPublisher interface {
	// PublishOperation stores cmd unless another operation of its charge is stored
	// (charge.ErrOperationInProgress), and returns the stream sequence this call stored
	// it under, 0 if an earlier call had. Errors are as Publisher's.
	PublishOperation(ctx context.Context, cmd charge.Command) (uint64, error)
	// WithdrawCommand removes the command stored under seq.
	WithdrawCommand(ctx context.Context, seq uint64) error
}

// OperationLog reads a charge, and its transitions from sequence number from on.
type OperationLog interface {
	GetCharge(ctx context.Context, merchant, id string) (charge.Charge, error)
	TransitionsFrom(ctx context.Context, from map[string]int) (map[string][]charge.Transition, error)
}

// OperationAction is the executor of KindOperation. The queue stores a capture or
// cancel only while no other operation of its charge is stored, and a worker removes one
// only once it has settled: so no other operation moves the charge between the publish
// and the settlement. One can between the check (against the charge as read, at
// cmd.Version) and the publish: a whole capture may settle in between, after which this
// cancel would be refused by the worker, a 202 come to nothing. So once the command is
// stored, the charge's transition after cmd.Version is read: none, or the intent this
// command claimed (a worker may be that quick), and the 202 stands; another's, and the
// command is withdrawn and the request answered charge.ErrOperationInProgress, its retry
// meeting the charge as it is now. A republish (a takeover of a stalled request) that
// found its own command stored is not checked again.
func OperationAction(p OperationPublisher, log OperationLog, logger *slog.Logger) func(ctx context.Context, a Action) error {
	return func(ctx context.Context, a Action) error {
		var cmd charge.Command
		if err := a.Decode(&cmd); err != nil {
			return fmt.Errorf("decoding command: %w", err)
		}
		seq, err := p.PublishOperation(ctx, cmd)
		if errors.Is(err, charge.ErrOperationInProgress) {
			return refusedOrInProgress(ctx, log, cmd, err)
		}
		if err != nil || seq == 0 {
			return err
		}
		logs, err := log.TransitionsFrom(ctx, map[string]int{cmd.ChargeID: int(cmd.Version) + 1})
		if err != nil {
			// The command is stored and most likely right: the 202 stands.
			logger.WarnContext(ctx, "reading the charge's log after accepting an operation", "charge_id", cmd.ChargeID, "error", err)
			return nil
		}
		next := logs[cmd.ChargeID]
		if len(next) == 0 || next[0].Operation == cmd.ID {
			return nil
		}
		if err := p.WithdrawCommand(context.WithoutCancel(ctx), seq); err != nil {
			// The worker refuses it, as the charge has moved: no effect either way.
			logger.WarnContext(ctx, "withdrawing an operation that came too late", "charge_id", cmd.ChargeID, "error", err)
		}
		return refusedOrInProgress(ctx, log, cmd, fmt.Errorf("charge %s moved (%s) after %s was checked: %w",
			cmd.ChargeID, next[0].Kind, cmd.Type, charge.ErrOperationInProgress))
	}
}

// refusedOrInProgress answers an operation that met another: inProgress (409) while the
// other is still under way, but the charge's own refusal (400 charge_not_capturable,
// charge_not_cancelable) once the other has settled it, as a request sent after it
// would be answered.
func refusedOrInProgress(ctx context.Context, log OperationLog, cmd charge.Command, inProgress error) error {
	c, err := log.GetCharge(ctx, cmd.Merchant, cmd.ChargeID)
	if err != nil || c.Operation != nil {
		return inProgress
	}
	var refusal *charge.InvalidRequestError
	if cmd.Type == charge.CommandCapture {
		refusal = c.CheckCapture(cmd.Amount)
	} else {
		refusal = c.CheckCancel()
	}
	if refusal != nil {
		return refusal
	}
	return inProgress
}
