package mongostore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/billing/billing/internal/charge"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// GetCharge returns the charge id of merchant as stored (call Public before showing it).
// It returns charge.ErrNotFound if there is no such charge or it belongs to another
// merchant. The filter is the id alone and the merchant is checked here: FerretDB turns
// only a bare _id filter into an indexed lookup and scans the collection for any other.
func (s *Store) GetCharge(ctx context.Context, merchant, id string) (charge.Charge, error) {
	var c charge.Charge
	if err := s.charges.FindOne(ctx, byID(id)).Decode(&c); err != nil {
		return charge.Charge{}, fmt.Errorf("getting charge %s: %w", id, translate(err))
	}
	if c.Merchant != merchant {
		return charge.Charge{}, fmt.Errorf("getting charge %s: %w", id, charge.ErrNotFound)
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
// id. Ids with no charge are absent from the map. Workers use it to read a batch; it reads
// by id, a few at a time (see eachID).
func (s *Store) ChargesByID(ctx context.Context, ids []string) (map[string]charge.Charge, error) {
	found, err := findEach[charge.Charge](ctx, s, s.charges, ids)
	if err != nil {
		return nil, fmt.Errorf("reading %d charges: %w", len(ids), err)
	}
	return found, nil
}

// InsertCharges writes new charges in one unordered insert and returns the ids of those
// already stored, which are left as they are: a redelivered command never overwrites the
// progress of an earlier delivery. Callers bring those up to date with SaveCharges.
func (s *Store) InsertCharges(ctx context.Context, cs []charge.Charge) ([]string, error) {
	taken, err := insertNew(ctx, s.charges, cs)
	if err != nil {
		return nil, fmt.Errorf("inserting %d charges: %w", len(cs), err)
	}
	ids := make([]string, len(taken))
	for i, idx := range taken {
		ids[i] = cs[idx].ID
	}
	return ids, nil
}

// ClaimTransitions records transitions in the log, in one unordered insert, and returns
// the ids of the charges whose claim lost. Each transition's id names its charge and
// sequence number, so of two workers that decide the same step of a charge exactly one
// insert succeeds: the log, not the charge document, arbitrates. Callers read the winners
// of lost claims with TransitionsFrom.
func (s *Store) ClaimTransitions(ctx context.Context, ts []charge.Transition) ([]string, error) {
	taken, err := insertNew(ctx, s.transitions, ts)
	if err != nil {
		return nil, fmt.Errorf("claiming %d transitions: %w", len(ts), err)
	}
	lost := make([]string, len(taken))
	for i, idx := range taken {
		lost[i] = ts[idx].ChargeID
	}
	return lost, nil
}

// TransitionsFrom returns, for each charge id, its logged transitions from sequence
// number from[id] on, in order. It reads them by id (charge id and sequence), so a charge
// costs one read more than it has transitions to return.
func (s *Store) TransitionsFrom(ctx context.Context, from map[string]int) (map[string][]charge.Transition, error) {
	var mu sync.Mutex
	out := make(map[string][]charge.Transition, len(from))
	err := s.eachID(ctx, keys(from), func(ctx context.Context, id string) error {
		var ts []charge.Transition
		for seq := max(from[id], 1); ; seq++ {
			var t charge.Transition
			err := s.transitions.FindOne(ctx, byID(charge.TransitionID(id, seq))).Decode(&t)
			if errors.Is(err, mongo.ErrNoDocuments) {
				break
			}
			if err != nil {
				return translate(err)
			}
			ts = append(ts, t)
		}
		mu.Lock()
		out[id] = ts
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading transitions of %d charges: %w", len(from), err)
	}
	return out, nil
}

// SaveCharges writes the folded state of charges (status, amounts, failure, events,
// version, the operation under way and those ended, the refunds). On MongoDB the write is conditional on the stored version being lower, so a
// view only moves forward. FerretDB evaluates such a condition on a read it does not lock
// (and scans the collection to do it), so there the write is by id alone and callers read
// back to repair an older view put back by a slower writer (worker.converge).
func (s *Store) SaveCharges(ctx context.Context, cs []charge.Charge) error {
	byID := make(map[string]charge.Charge, len(cs))
	for _, c := range cs {
		byID[c.ID] = c
	}
	err := s.eachID(ctx, keys(byID), func(ctx context.Context, id string) error {
		c := byID[id]
		filter := bson.D{{Key: "_id", Value: id}}
		if !s.ferret {
			filter = append(filter, bson.E{Key: "version", Value: bson.D{{Key: "$lt", Value: c.Version}}})
		}
		_, err := s.charges.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
			{Key: "status", Value: c.Status},
			{Key: "amount_captured", Value: c.AmountCaptured},
			{Key: "amount_refunded", Value: c.AmountRefunded},
			{Key: "failure_code", Value: c.FailureCode},
			{Key: "failure_message", Value: c.FailureMessage},
			{Key: "authorization_id", Value: c.AuthorizationID},
			{Key: "updated_at", Value: c.UpdatedAt},
			{Key: "events", Value: c.Events},
			{Key: "version", Value: c.Version},
			{Key: "operation", Value: c.Operation},
			{Key: "ended", Value: c.Ended},
			{Key: "refunds", Value: c.Refunds},
		}}})
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("saving %d charges: %w", len(cs), err)
	}
	return nil
}
