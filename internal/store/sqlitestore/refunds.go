package sqlitestore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/billing/billing/internal/charge"
)

// refundDoc is what a refund's row keeps in its JSON column: all but the columns.
type refundDoc struct {
	Amount      int64   `json:"amount"`
	Currency    string  `json:"currency"`
	Status      string  `json:"status"`
	FailureCode *string `json:"failure_code"`
	Reason      *string `json:"reason"`
	CreatedAt   int64   `json:"created_at"`
	UpdatedAt   int64   `json:"updated_at"`
	Reference   string  `json:"reference,omitempty"`
	Delivery    uint64  `json:"delivery,omitempty"`
	Version     int64   `json:"version"`
}

// refundRow is a whole refund in one document, as a charge, a transition or an event
// holds it.
type refundRow struct {
	ID       string `json:"id"`
	Merchant string `json:"merchant"`
	Charge   string `json:"charge"`
	refundDoc
}

func toRefundRow(r charge.Refund) refundRow {
	return refundRow{
		ID:       r.ID,
		Merchant: r.Merchant,
		Charge:   r.Charge,
		refundDoc: refundDoc{
			Amount:      r.Amount,
			Currency:    r.Currency,
			Status:      string(r.Status),
			FailureCode: r.FailureCode,
			Reason:      r.Reason,
			CreatedAt:   millis(r.CreatedAt),
			UpdatedAt:   millis(r.UpdatedAt),
			Reference:   r.Reference,
			Delivery:    r.Delivery,
			Version:     r.Version,
		},
	}
}

func (r refundRow) refund() charge.Refund {
	return charge.Refund{
		ID:          r.ID,
		Merchant:    r.Merchant,
		Charge:      r.Charge,
		Amount:      r.Amount,
		Currency:    r.Currency,
		Status:      charge.RefundStatus(r.Status),
		FailureCode: r.FailureCode,
		Reason:      r.Reason,
		CreatedAt:   fromMillis(r.CreatedAt),
		UpdatedAt:   fromMillis(r.UpdatedAt),
		Reference:   r.Reference,
		Delivery:    r.Delivery,
		Version:     r.Version,
	}
}

// refundColumns are the columns scanRefund reads, in its order.
const refundColumns = "id, merchant, charge_id, doc"

func scanRefund(sc scanner) (charge.Refund, error) {
	var r refundRow
	var doc []byte
	if err := sc.Scan(&r.ID, &r.Merchant, &r.Charge, &doc); err != nil {
		return charge.Refund{}, err
	}
	if err := json.Unmarshal(doc, &r.refundDoc); err != nil {
		return charge.Refund{}, fmt.Errorf("decoding refund %s: %w", r.ID, err)
	}
	return r.refund(), nil
}

// GetRefund returns the refund id of merchant as stored (call Public before showing it).
// It returns charge.ErrNotFound if there is no such refund or it belongs to another
// merchant.
func (s *Store) GetRefund(ctx context.Context, merchant, id string) (charge.Refund, error) {
	row := s.queryRow(ctx, "SELECT "+refundColumns+" FROM refunds WHERE id = ? AND merchant = ?", id, merchant)
	r, err := scanRefund(row)
	if err != nil {
		return charge.Refund{}, s.wrap(fmt.Sprintf("getting refund %s", id), err)
	}
	return r, nil
}

// ListRefunds returns a page of merchant's refunds, newest first: at most p.Limit (10 if
// it is not positive), only those older than p.StartingAfter and only those of p.Charge
// when they are set. hasMore reports whether older refunds matching remain.
func (s *Store) ListRefunds(ctx context.Context, merchant string, p charge.RefundListParams) (refunds []charge.Refund, hasMore bool, err error) {
	q := page{columns: refundColumns, table: "refunds"}
	q.and("merchant = ?", merchant)
	if p.Charge != "" {
		q.and("charge_id = ?", p.Charge)
	}
	refunds, hasMore, err = list(ctx, s, q, p.Limit, p.StartingAfter, scanRefund)
	if err != nil {
		return nil, false, s.wrap("listing refunds", err)
	}
	return refunds, hasMore, nil
}

// InsertRefunds writes settled refunds in one transaction. A refund's row is written
// once the refund is settled, and a settled refund never changes, so a refund already
// stored is left as it is and is not an error.
func (s *Store) InsertRefunds(ctx context.Context, rs []charge.Refund) error {
	const insert = "INSERT INTO refunds (" + refundColumns + ") VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
	_, err := s.insertBatch(ctx, insert, len(rs), func(i int) ([]any, error) {
		r := toRefundRow(rs[i])
		doc, err := json.Marshal(r.refundDoc)
		if err != nil {
			return nil, rejected("encoding refund %s: %v", r.ID, err)
		}
		return []any{r.ID, r.Merchant, r.Charge, string(doc)}, nil
	})
	return s.wrap(fmt.Sprintf("inserting %d refunds", len(rs)), err)
}

// EachRefund calls f with every stored refund, for reconciliation.
func (s *Store) EachRefund(ctx context.Context, f func(charge.Refund) error) error {
	return s.wrap("walking refunds", each(ctx, s, "SELECT "+refundColumns+" FROM refunds", scanRefund, f))
}
