package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/processor"
)

// ChargeArgs is the job of one accepted charge: the pending charge as the 202 showed it,
// and its merchant (not part of the charge's JSON).
type ChargeArgs struct {
	Merchant string        `json:"merchant"`
	Charge   charge.Charge `json:"charge"`
}

// Kind names the job kind in River.
func (ChargeArgs) Kind() string { return "charge" }

// Authorizer is the part of the payment processor a create needs.
type Authorizer interface {
	Authorize(ctx context.Context, req processor.AuthorizeRequest) (processor.Result, error)
}

// ChargeWorker settles a charge: it authorizes it with the processor, as our worker does
// (internal/worker), and writes what our worker writes for it, the charge as decided, its
// event and its ledger entries (two for an approved charge, none for a declined one), in
// one transaction that also completes the job (River's JobCompleteTx): the job is done
// exactly when its rows are stored.
type ChargeWorker struct {
	river.WorkerDefaults[ChargeArgs]
	pool      *pgxpool.Pool
	processor Authorizer
	now       func() time.Time
}

// Work settles the job's charge. A transient processor error is returned, for River to
// retry the job with its backoff, until the job's last attempt, which fails the charge
// with processing_error, as our worker does once its retry schedule is used up.
func (w *ChargeWorker) Work(ctx context.Context, job *river.Job[ChargeArgs]) error {
	c := job.Args.Charge
	c.Merchant = job.Args.Merchant
	res, err := w.processor.Authorize(ctx, processor.AuthorizeRequest{
		ChargeID: c.ID, Amount: c.Amount, Currency: c.Currency, PaymentMethod: c.PaymentMethod, Capture: c.Capture,
	})
	now := w.now()
	var t charge.Transition
	switch {
	case errors.Is(err, processor.ErrTransient) || errors.Is(err, context.DeadlineExceeded):
		if job.Attempt < job.MaxAttempts {
			return err
		}
		t = charge.NewTransition(c, charge.StatusFailed, now, 0, charge.FailureProcessingError, "")
	case err != nil:
		t = charge.NewTransition(c, charge.StatusFailed, now, 0, charge.FailureProcessingError, "")
	case !res.Approved:
		t = charge.NewTransition(c, charge.StatusFailed, now, 0, res.DeclineCode, res.Reference)
	case c.Capture:
		t = charge.NewTransition(c, charge.StatusSucceeded, now, c.Amount, "", res.Reference)
	default:
		t = charge.NewTransition(c, charge.StatusRequiresCapture, now, 0, "", res.Reference)
	}
	view := charge.Fold(c, []charge.Transition{t})
	event := charge.NewEvent(view, t.Event)
	entries := charge.Entries(c, t)

	doc, err := json.Marshal(view.Public())
	if err != nil {
		return fmt.Errorf("encoding charge %s: %w", c.ID, err)
	}
	data, err := json.Marshal(event.Public())
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", event.ID, err)
	}
	// One round trip for the rows; an id already stored (a job rescued while its first
	// run was still going) is left as it is, and JobCompleteTx then finds the job no
	// longer running and rolls the whole back.
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO charges (id, merchant, status, amount, currency, doc) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO NOTHING`, view.ID, view.Merchant, string(view.Status), view.Amount, view.Currency, doc)
	b.Queue(`INSERT INTO events (id, merchant, type, charge_id, sequence, created_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO NOTHING`, event.ID, event.Merchant, event.Type, event.ChargeID, event.Sequence, event.CreatedAt, data)
	for _, e := range entries {
		b.Queue(`INSERT INTO ledger_entries (id, transaction_id, merchant, charge_id, refund_id, kind, account, currency, amount, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
			e.ID, e.Transaction, e.Merchant, e.ChargeID, e.RefundID, string(e.Kind), string(e.Account), e.Currency, e.Amount, e.CreatedAt)
	}

	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("writing charge %s: %w", c.ID, err)
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("completing the job of charge %s: %w", c.ID, err)
	}
	return tx.Commit(ctx)
}
