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

// ApplyTransitions applies each transition whose charge is still in its From status, in
// one unordered bulk write: status, updated_at, amount_captured and authorization_id when
// set, failure code and message when the transition has a failure code, and the event
// appended to the charge's events. A transition whose charge has already left From (an
// earlier delivery or another worker got there first) changes nothing and is not an error;
// callers that need to know re-read the charges (ChargesByID).
//
// The order in which the transitions of one call are applied is not defined, so a call
// should hold at most one transition per charge.
func (s *Store) ApplyTransitions(ctx context.Context, ts []charge.Transition) error {
	if len(ts) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, 0, len(ts))
	for _, t := range ts {
		set := bson.D{
			{Key: "status", Value: t.To},
			{Key: "updated_at", Value: t.At},
		}
		if t.AmountCaptured != 0 {
			set = append(set, bson.E{Key: "amount_captured", Value: t.AmountCaptured})
		}
		if t.AuthorizationID != "" {
			set = append(set, bson.E{Key: "authorization_id", Value: t.AuthorizationID})
		}
		if t.FailureCode != "" {
			set = append(set,
				bson.E{Key: "failure_code", Value: t.FailureCode},
				bson.E{Key: "failure_message", Value: charge.FailureMessage(t.FailureCode)},
			)
		}
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: t.ChargeID}, {Key: "status", Value: t.From}}).
			SetUpdate(bson.D{
				{Key: "$set", Value: set},
				{Key: "$push", Value: bson.D{{Key: "events", Value: t.Event}}},
			}))
	}
	if _, err := s.charges.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return fmt.Errorf("applying %d transitions: %w", len(ts), translate(err))
	}
	return nil
}
