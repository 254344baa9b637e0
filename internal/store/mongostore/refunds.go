package mongostore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/billing/billing/internal/charge"
)

// refundDoc is a refund as the refunds collection stores it, and as its charge's document,
// a transition and an event's data hold it.
type refundDoc struct {
	ID          string              `bson:"_id"`
	Merchant    string              `bson:"merchant"`
	Charge      string              `bson:"charge"`
	Amount      int64               `bson:"amount"`
	Currency    string              `bson:"currency"`
	Status      charge.RefundStatus `bson:"status"`
	FailureCode *string             `bson:"failure_code"`
	Reason      *string             `bson:"reason"`
	CreatedAt   time.Time           `bson:"created_at"`
	UpdatedAt   time.Time           `bson:"updated_at"`
	Reference   string              `bson:"reference,omitempty"`
	Delivery    uint64              `bson:"delivery,omitempty"`
	Version     int64               `bson:"version"`
}

func newRefundDoc(r charge.Refund) refundDoc {
	return refundDoc{
		ID:          r.ID,
		Merchant:    r.Merchant,
		Charge:      r.Charge,
		Amount:      r.Amount,
		Currency:    r.Currency,
		Status:      r.Status,
		FailureCode: r.FailureCode,
		Reason:      r.Reason,
		CreatedAt:   r.CreatedAt,
		UpdatedAt:   r.UpdatedAt,
		Reference:   r.Reference,
		Delivery:    r.Delivery,
		Version:     r.Version,
	}
}

func (d refundDoc) toRefund() charge.Refund {
	return charge.Refund{
		ID:          d.ID,
		Merchant:    d.Merchant,
		Charge:      d.Charge,
		Amount:      d.Amount,
		Currency:    d.Currency,
		Status:      d.Status,
		FailureCode: d.FailureCode,
		Reason:      d.Reason,
		CreatedAt:   d.CreatedAt,
		UpdatedAt:   d.UpdatedAt,
		Reference:   d.Reference,
		Delivery:    d.Delivery,
		Version:     d.Version,
	}
}

// GetRefund returns the refund id of merchant as stored (call Public before showing it).
// It returns charge.ErrNotFound if there is no such refund or it belongs to another
// merchant.
func (s *Store) GetRefund(ctx context.Context, merchant, id string) (charge.Refund, error) {
	var d refundDoc
	if err := s.findOwned(ctx, s.refunds, merchant, id, &d); err != nil {
		return charge.Refund{}, fmt.Errorf("getting refund %s: %w", id, err)
	}
	return d.toRefund(), nil
}

// ListRefunds returns a page of merchant's refunds, newest first: at most p.Limit (10 if
// it is not positive), only those older than p.StartingAfter and only those of p.Charge
// when they are set. hasMore reports whether older refunds matching remain.
func (s *Store) ListRefunds(ctx context.Context, merchant string, p charge.RefundListParams) (refunds []charge.Refund, hasMore bool, err error) {
	filter := bson.D{{Key: "merchant", Value: merchant}}
	if p.Charge != "" {
		filter = append(filter, bson.E{Key: "charge", Value: p.Charge})
	}
	if p.StartingAfter != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: p.StartingAfter}}})
	}
	refunds, hasMore, err = findPage(ctx, s.refunds, filter, listLimit(p.Limit), refundDoc.toRefund)
	if err != nil {
		return nil, false, fmt.Errorf("listing refunds: %w", err)
	}
	return refunds, hasMore, nil
}

// InsertRefunds writes settled refunds in one unordered insert. A refund's document is
// written once the refund is settled, and a settled refund never changes, so a refund
// already stored is left as it is and is not an error.
func (s *Store) InsertRefunds(ctx context.Context, rs []charge.Refund) error {
	if err := insertAll(ctx, s.refunds, mapSlice(rs, newRefundDoc)); err != nil {
		return fmt.Errorf("inserting %d refunds: %w", len(rs), err)
	}
	return nil
}
