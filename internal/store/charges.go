package store

import (
	"context"
	"fmt"

	"github.com/billing/billing/internal/charge"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// GetCharge returns the charge id of merchant as stored (call Public before showing it).
// It returns charge.ErrNotFound if there is no such charge or it belongs to another
// merchant.
func (s *Store) GetCharge(ctx context.Context, merchant, id string) (charge.Charge, error) {
	var c charge.Charge
	err := s.charges.FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "merchant", Value: merchant}}).Decode(&c)
	if err != nil {
		return charge.Charge{}, fmt.Errorf("getting charge %s: %w", id, translate(err))
	}
	return c, nil
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
	if p.StartingAfter != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: p.StartingAfter}}})
	}
	charges = []charge.Charge{}
	hasMore, err = findPage(ctx, s.charges, filter, listLimit(p.Limit), &charges)
	if err != nil {
		return nil, false, fmt.Errorf("listing charges: %w", err)
	}
	return charges, hasMore, nil
}

// findPage finds up to limit documents matching filter, newest (highest _id) first, into
// the slice out points to, and reports whether more matched.
func findPage[T any](ctx context.Context, coll *mongo.Collection, filter bson.D, limit int, out *[]T) (hasMore bool, err error) {
	opts := options.Find().
		SetSort(bson.D{{Key: "_id", Value: -1}}).
		SetLimit(int64(limit) + 1)
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return false, translate(err)
	}
	if err := cur.All(ctx, out); err != nil {
		return false, translate(err)
	}
	if len(*out) > limit {
		*out = (*out)[:limit]
		return true, nil
	}
	return false, nil
}

// ChargesByID returns the charges with the given ids, whoever their merchant, keyed by
// id. Ids with no charge are absent from the map. Workers use it to read a batch.
func (s *Store) ChargesByID(ctx context.Context, ids []string) (map[string]charge.Charge, error) {
	found := make(map[string]charge.Charge, len(ids))
	if len(ids) == 0 {
		return found, nil
	}
	cur, err := s.charges.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("reading %d charges: %w", len(ids), translate(err))
	}
	var cs []charge.Charge
	if err := cur.All(ctx, &cs); err != nil {
		return nil, fmt.Errorf("reading %d charges: %w", len(ids), translate(err))
	}
	for _, c := range cs {
		found[c.ID] = c
	}
	return found, nil
}

// InsertPendingCharges writes the charges of accepted create commands, in one unordered
// bulk write. It is idempotent: a charge whose id is already stored is left as it is,
// whatever the new copy says, so a redelivered command never overwrites the progress of
// an earlier delivery.
func (s *Store) InsertPendingCharges(ctx context.Context, cs []charge.Charge) error {
	if len(cs) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, 0, len(cs))
	for _, c := range cs {
		m, err := setOnInsert(c)
		if err != nil {
			return fmt.Errorf("encoding charge %s: %w", c.ID, err)
		}
		models = append(models, m)
	}
	_, err := s.charges.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	// Two concurrent upserts of one id can make the loser fail with a duplicate key: the
	// charge is there, which is all this write asks for.
	if err := withoutDuplicates(err); err != nil {
		return fmt.Errorf("inserting %d charges: %w", len(cs), translate(err))
	}
	return nil
}

// ClaimTransitions records transitions in the log, in one unordered bulk insert. Each
// transition's id names its charge and sequence number, so of two workers that decide the
// same step of a charge exactly one insert succeeds (the other's duplicate is not an
// error): the log, not the charge document, arbitrates. Callers read the winners back
// with TransitionsOf.
func (s *Store) ClaimTransitions(ctx context.Context, ts []charge.Transition) error {
	if len(ts) == 0 {
		return nil
	}
	docs := make([]any, len(ts))
	for i, t := range ts {
		docs[i] = t
	}
	_, err := s.transitions.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err := withoutDuplicates(err); err != nil {
		return fmt.Errorf("claiming %d transitions: %w", len(ts), translate(err))
	}
	return nil
}

// TransitionsOf returns the logged transitions of the given charges, each charge's in
// sequence order.
func (s *Store) TransitionsOf(ctx context.Context, chargeIDs []string) (map[string][]charge.Transition, error) {
	out := make(map[string][]charge.Transition, len(chargeIDs))
	if len(chargeIDs) == 0 {
		return out, nil
	}
	cur, err := s.transitions.Find(ctx,
		bson.D{{Key: "charge_id", Value: bson.D{{Key: "$in", Value: chargeIDs}}}},
		options.Find().SetSort(bson.D{{Key: "charge_id", Value: 1}, {Key: "sequence", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("reading transitions of %d charges: %w", len(chargeIDs), translate(err))
	}
	var ts []charge.Transition
	if err := cur.All(ctx, &ts); err != nil {
		return nil, fmt.Errorf("reading transitions of %d charges: %w", len(chargeIDs), translate(err))
	}
	for _, t := range ts {
		out[t.ChargeID] = append(out[t.ChargeID], t)
	}
	return out, nil
}

// SaveCharges writes the folded state of charges (status, amounts, failure, events,
// version) over stored copies of a lower version, in one unordered bulk write. A stored
// copy at the same or a higher version is left alone.
func (s *Store) SaveCharges(ctx context.Context, cs []charge.Charge) error {
	if len(cs) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, 0, len(cs))
	for _, c := range cs {
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: c.ID}, {Key: "version", Value: bson.D{{Key: "$lt", Value: c.Version}}}}).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{
				{Key: "status", Value: c.Status},
				{Key: "amount_captured", Value: c.AmountCaptured},
				{Key: "amount_refunded", Value: c.AmountRefunded},
				{Key: "failure_code", Value: c.FailureCode},
				{Key: "failure_message", Value: c.FailureMessage},
				{Key: "authorization_id", Value: c.AuthorizationID},
				{Key: "updated_at", Value: c.UpdatedAt},
				{Key: "events", Value: c.Events},
				{Key: "version", Value: c.Version},
			}}}))
	}
	if _, err := s.charges.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return fmt.Errorf("saving %d charges: %w", len(cs), translate(err))
	}
	return nil
}
