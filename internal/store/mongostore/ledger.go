package mongostore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/billing/billing/internal/charge"
)

// ledgerEntryDoc is a ledger entry as the ledger_entries collection stores it.
type ledgerEntryDoc struct {
	ID          string                `bson:"_id"`
	Transaction string                `bson:"transaction"`
	Merchant    string                `bson:"merchant"`
	ChargeID    string                `bson:"charge_id"`
	RefundID    string                `bson:"refund_id,omitempty"`
	Kind        charge.TransitionKind `bson:"kind"`
	Account     charge.Account        `bson:"account"`
	Currency    string                `bson:"currency"`
	Amount      int64                 `bson:"amount"`
	CreatedAt   time.Time             `bson:"created_at"`
}

func newLedgerEntryDoc(e charge.LedgerEntry) ledgerEntryDoc {
	return ledgerEntryDoc{
		ID:          e.ID,
		Transaction: e.Transaction,
		Merchant:    e.Merchant,
		ChargeID:    e.ChargeID,
		RefundID:    e.RefundID,
		Kind:        e.Kind,
		Account:     e.Account,
		Currency:    e.Currency,
		Amount:      e.Amount,
		CreatedAt:   e.CreatedAt,
	}
}

func (d ledgerEntryDoc) toLedgerEntry() charge.LedgerEntry {
	return charge.LedgerEntry{
		ID:          d.ID,
		Transaction: d.Transaction,
		Merchant:    d.Merchant,
		ChargeID:    d.ChargeID,
		RefundID:    d.RefundID,
		Kind:        d.Kind,
		Account:     d.Account,
		Currency:    d.Currency,
		Amount:      d.Amount,
		CreatedAt:   d.CreatedAt,
	}
}

// each walks every document of one collection, for reconciliation: the whole collection
// is read once, with no filter and no sort, in whatever order the server keeps it (a
// collection scan, the cheapest way to read everything; TestQueryPlans allows these walks
// alone to scan). f is called with each document (of type D) decoded and made a T by
// from.
func each[D, T any](ctx context.Context, coll *mongo.Collection, from func(D) T, f func(T) error) error {
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		return translate(err)
	}
	defer func() { _ = cur.Close(ctx) }()
	for cur.Next(ctx) {
		var d D
		if err := cur.Decode(&d); err != nil {
			return err
		}
		if err := f(from(d)); err != nil {
			return err
		}
	}
	return translate(cur.Err())
}

// EachCharge calls f with every stored charge.
func (s *Store) EachCharge(ctx context.Context, f func(charge.Charge) error) error {
	return wrap("walking charges", each(ctx, s.charges, chargeDoc.toCharge, f))
}

// EachTransition calls f with every logged transition.
func (s *Store) EachTransition(ctx context.Context, f func(charge.Transition) error) error {
	return wrap("walking transitions", each(ctx, s.transitions, transitionDoc.toTransition, f))
}

// EachRefund calls f with every stored refund.
func (s *Store) EachRefund(ctx context.Context, f func(charge.Refund) error) error {
	return wrap("walking refunds", each(ctx, s.refunds, refundDoc.toRefund, f))
}

// EachLedgerEntry calls f with every ledger entry.
func (s *Store) EachLedgerEntry(ctx context.Context, f func(charge.LedgerEntry) error) error {
	return wrap("walking the ledger", each(ctx, s.ledger, ledgerEntryDoc.toLedgerEntry, f))
}

func wrap(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
