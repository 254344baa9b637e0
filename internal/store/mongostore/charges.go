package mongostore

import (
	"context"
	"fmt"
	"time"

	"github.com/billing/billing/internal/charge"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// chargeDoc is a charge as the charges collection stores it, and as an event's data holds
// it. Its metadata is stored as pairs (metadata.go).
type chargeDoc struct {
	ID             string          `bson:"_id"`
	Merchant       string          `bson:"merchant"`
	Amount         int64           `bson:"amount"`
	Currency       string          `bson:"currency"`
	PaymentMethod  string          `bson:"payment_method"`
	Capture        bool            `bson:"capture"`
	Status         charge.Status   `bson:"status"`
	AmountCaptured int64           `bson:"amount_captured"`
	AmountRefunded int64           `bson:"amount_refunded"`
	FailureCode    *string         `bson:"failure_code"`
	FailureMessage *string         `bson:"failure_message"`
	Description    *string         `bson:"description"`
	Customer       *string         `bson:"customer"`
	Metadata       charge.Metadata `bson:"metadata"`
	CreatedAt      time.Time       `bson:"created_at"`
	UpdatedAt      time.Time       `bson:"updated_at"`

	AuthorizationID string                  `bson:"authorization_id,omitempty"`
	Events          []eventRefDoc           `bson:"events,omitempty"`
	Version         int64                   `bson:"version"`
	Operation       *operationDoc           `bson:"operation,omitempty"`
	Ended           []charge.TransitionKind `bson:"ended,omitempty"`
	Refunds         []refundDoc             `bson:"refunds,omitempty"`
}

func newChargeDoc(c charge.Charge) chargeDoc {
	return chargeDoc{
		ID:              c.ID,
		Merchant:        c.Merchant,
		Amount:          c.Amount,
		Currency:        c.Currency,
		PaymentMethod:   c.PaymentMethod,
		Capture:         c.Capture,
		Status:          c.Status,
		AmountCaptured:  c.AmountCaptured,
		AmountRefunded:  c.AmountRefunded,
		FailureCode:     c.FailureCode,
		FailureMessage:  c.FailureMessage,
		Description:     c.Description,
		Customer:        c.Customer,
		Metadata:        c.Metadata,
		CreatedAt:       c.CreatedAt,
		UpdatedAt:       c.UpdatedAt,
		AuthorizationID: c.AuthorizationID,
		Events:          mapSlice(c.Events, newEventRefDoc),
		Version:         c.Version,
		Operation:       mapPtr(c.Operation, newOperationDoc),
		Ended:           c.Ended,
		Refunds:         mapSlice(c.Refunds, newRefundDoc),
	}
}

func (d chargeDoc) toCharge() charge.Charge {
	return charge.Charge{
		ID:              d.ID,
		Merchant:        d.Merchant,
		Amount:          d.Amount,
		Currency:        d.Currency,
		PaymentMethod:   d.PaymentMethod,
		Capture:         d.Capture,
		Status:          d.Status,
		AmountCaptured:  d.AmountCaptured,
		AmountRefunded:  d.AmountRefunded,
		FailureCode:     d.FailureCode,
		FailureMessage:  d.FailureMessage,
		Description:     d.Description,
		Customer:        d.Customer,
		Metadata:        d.Metadata,
		CreatedAt:       d.CreatedAt,
		UpdatedAt:       d.UpdatedAt,
		AuthorizationID: d.AuthorizationID,
		Events:          mapSlice(d.Events, eventRefDoc.toEventRef),
		Version:         d.Version,
		Operation:       mapPtr(d.Operation, operationDoc.toOperation),
		Ended:           d.Ended,
		Refunds:         mapSlice(d.Refunds, refundDoc.toRefund),
	}
}

// eventRefDoc is an event of a charge as its charge's document records it.
type eventRefDoc struct {
	ID             string        `bson:"id"`
	Type           string        `bson:"type"`
	Sequence       int           `bson:"sequence"`
	CreatedAt      time.Time     `bson:"created_at"`
	Status         charge.Status `bson:"status"`
	AmountCaptured int64         `bson:"amount_captured"`
	AmountRefunded int64         `bson:"amount_refunded"`
	FailureCode    string        `bson:"failure_code,omitempty"`
	RefundID       string        `bson:"refund_id,omitempty"`
}

func newEventRefDoc(r charge.EventRef) eventRefDoc {
	return eventRefDoc{
		ID:             r.ID,
		Type:           r.Type,
		Sequence:       r.Sequence,
		CreatedAt:      r.CreatedAt,
		Status:         r.Status,
		AmountCaptured: r.AmountCaptured,
		AmountRefunded: r.AmountRefunded,
		FailureCode:    r.FailureCode,
		RefundID:       r.RefundID,
	}
}

func (d eventRefDoc) toEventRef() charge.EventRef {
	return charge.EventRef{
		ID:             d.ID,
		Type:           d.Type,
		Sequence:       d.Sequence,
		CreatedAt:      d.CreatedAt,
		Status:         d.Status,
		AmountCaptured: d.AmountCaptured,
		AmountRefunded: d.AmountRefunded,
		FailureCode:    d.FailureCode,
		RefundID:       d.RefundID,
	}
}

// operationDoc is the capture or cancel under way, as its charge's document records it.
type operationDoc struct {
	Kind     charge.TransitionKind `bson:"kind"`
	Amount   int64                 `bson:"amount,omitempty"`
	Delivery uint64                `bson:"delivery,omitempty"`
}

func newOperationDoc(o charge.Operation) operationDoc {
	return operationDoc{Kind: o.Kind, Amount: o.Amount, Delivery: o.Delivery}
}

func (d operationDoc) toOperation() charge.Operation {
	return charge.Operation{Kind: d.Kind, Amount: d.Amount, Delivery: d.Delivery}
}

// GetCharge returns the charge id of merchant as stored (call Public before showing it).
// It returns charge.ErrNotFound if there is no such charge or it belongs to another
// merchant (findOwned: by merchant and id on MongoDB, by id on FerretDB).
func (s *Store) GetCharge(ctx context.Context, merchant, id string) (charge.Charge, error) {
	var d chargeDoc
	if err := s.findOwned(ctx, s.charges, merchant, id, &d); err != nil {
		return charge.Charge{}, fmt.Errorf("getting charge %s: %w", id, err)
	}
	return d.toCharge(), nil
}

// ListCharges returns a page of merchant's charges, newest first: at most p.Limit (10 if
// it is not positive), only those older than p.StartingAfter when it is set, only those in
// p.Status when it is set. hasMore reports whether older charges matching remain. Ids sort
// by creation time, so the order is that of _id.
func (s *Store) ListCharges(ctx context.Context, merchant string, p charge.ListParams) (charges []charge.Charge, hasMore bool, err error) {
	filter := bson.D{{Key: "merchant", Value: merchant}}
	if p.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: p.Status})
	}
	if p.Customer != "" {
		filter = append(filter, bson.E{Key: "customer", Value: p.Customer})
	}
	if p.StartingAfter != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: p.StartingAfter}}})
	}
	charges, hasMore, err = findPage(ctx, s.charges, filter, listLimit(p.Limit), chargeDoc.toCharge)
	if err != nil {
		return nil, false, fmt.Errorf("listing charges: %w", err)
	}
	return charges, hasMore, nil
}

// findPage finds up to limit documents (of type D) matching filter, newest (highest _id)
// first, and returns them as from makes them (an empty slice, not nil, for none); hasMore
// reports whether more matched.
func findPage[D, T any](ctx context.Context, coll *mongo.Collection, filter bson.D, limit int, from func(D) T) (page []T, hasMore bool, err error) {
	opts := options.Find().
		SetSort(bson.D{{Key: "_id", Value: -1}}).
		SetLimit(int64(limit) + 1)
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, false, translate(err)
	}
	var docs []D
	if err := cur.All(ctx, &docs); err != nil {
		return nil, false, translate(err)
	}
	if len(docs) > limit {
		docs, hasMore = docs[:limit], true
	}
	page = make([]T, len(docs))
	for i, d := range docs {
		page[i] = from(d)
	}
	return page, hasMore, nil
}

// ChargesByID returns the charges with the given ids, whoever their merchant, keyed by
// id. Ids with no charge are absent from the map. Workers use it to read a batch; it reads
// by id, a few at a time (see eachID).
func (s *Store) ChargesByID(ctx context.Context, ids []string) (map[string]charge.Charge, error) {
	found, err := findEach(ctx, s, s.charges, ids, chargeDoc.toCharge)
	if err != nil {
		return nil, fmt.Errorf("reading %d charges: %w", len(ids), err)
	}
	return found, nil
}

// InsertCharges writes new charges in one unordered insert and returns the ids of those
// already stored, which are left as they are: a redelivered command never overwrites the
// progress of an earlier delivery. Callers bring those up to date with SaveCharges.
func (s *Store) InsertCharges(ctx context.Context, cs []charge.Charge) ([]string, error) {
	taken, err := insertNew(ctx, s.charges, mapSlice(cs, newChargeDoc))
	if err != nil {
		return nil, fmt.Errorf("inserting %d charges: %w", len(cs), err)
	}
	ids := make([]string, len(taken))
	for i, idx := range taken {
		ids[i] = cs[idx].ID
	}
	return ids, nil
}

// SaveCharges writes the folded state of charges (status, amounts, failure, events,
// version, the operation under way and those ended, the refunds). On MongoDB the write is
// by merchant and id (byMerchantID: one shard of a cluster) and conditional on the stored
// version being lower, so a view only moves forward. FerretDB evaluates such a condition
// on a read it does not lock (and scans the collection to do it), so there the write is
// by id alone and callers read back to repair an older view put back by a slower writer
// (worker.converge).
func (s *Store) SaveCharges(ctx context.Context, cs []charge.Charge) error {
	byID := make(map[string]charge.Charge, len(cs))
	for _, c := range cs {
		byID[c.ID] = c
	}
	err := s.eachID(ctx, keys(byID), func(ctx context.Context, id string) error {
		c := byID[id]
		filter := s.byMerchantID(c.Merchant, id)
		if !s.ferret {
			filter = append(filter, bson.E{Key: "version", Value: bson.D{{Key: "$lt", Value: c.Version}}})
		}
		_, err := s.charges.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: savedFields(c)}})
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("saving %d charges: %w", len(cs), err)
	}
	return nil
}

// savedFields are the fields of c's document that SaveCharges writes: those transitions
// change.
func savedFields(c charge.Charge) bson.D {
	d := newChargeDoc(c)
	return bson.D{
		{Key: "status", Value: d.Status},
		{Key: "amount_captured", Value: d.AmountCaptured},
		{Key: "amount_refunded", Value: d.AmountRefunded},
		{Key: "failure_code", Value: d.FailureCode},
		{Key: "failure_message", Value: d.FailureMessage},
		{Key: "authorization_id", Value: d.AuthorizationID},
		{Key: "updated_at", Value: d.UpdatedAt},
		{Key: "events", Value: d.Events},
		{Key: "version", Value: d.Version},
		{Key: "operation", Value: d.Operation},
		{Key: "ended", Value: d.Ended},
		{Key: "refunds", Value: d.Refunds},
	}
}
