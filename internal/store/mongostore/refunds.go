package mongostore

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/billing/billing/internal/charge"
)

// GetRefund returns the refund id of merchant as stored (call Public before showing it).
// It returns charge.ErrNotFound if there is no such refund or it belongs to another
// merchant.
func (s *Store) GetRefund(ctx context.Context, merchant, id string) (charge.Refund, error) {
	var r charge.Refund
	if err := s.refunds.FindOne(ctx, byID(id)).Decode(&r); err != nil {
		return charge.Refund{}, fmt.Errorf("getting refund %s: %w", id, translate(err))
	}
	if r.Merchant != merchant {
		return charge.Refund{}, fmt.Errorf("getting refund %s: %w", id, charge.ErrNotFound)
	}
	return r, nil
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
	refunds = []charge.Refund{}
	hasMore, err = findPage(ctx, s.refunds, filter, listLimit(p.Limit), &refunds)
	if err != nil {
		return nil, false, fmt.Errorf("listing refunds: %w", err)
	}
	return refunds, hasMore, nil
}

// InsertRefunds writes settled refunds in one unordered insert. A refund's document is
// written once the refund is settled, and a settled refund never changes, so a refund
// already stored is left as it is and is not an error.
func (s *Store) InsertRefunds(ctx context.Context, rs []charge.Refund) error {
	if err := insertAll(ctx, s.refunds, rs); err != nil {
		return fmt.Errorf("inserting %d refunds: %w", len(rs), err)
	}
	return nil
}
