package mongostore

import (
	"context"
	"fmt"

	"github.com/billing/billing/internal/charge"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// InsertEvents writes events in one unordered insert. It is idempotent by event id: an
// event already stored is left as it is and is not an error.
func (s *Store) InsertEvents(ctx context.Context, es []charge.Event) error {
	if err := insertAll(ctx, s.events, es); err != nil {
		return fmt.Errorf("inserting %d events: %w", len(es), err)
	}
	return nil
}

// GetEvent returns the event id of merchant as stored (call Public before showing it). It
// returns charge.ErrNotFound if there is no such event or it belongs to another merchant.
func (s *Store) GetEvent(ctx context.Context, merchant, id string) (charge.Event, error) {
	var e charge.Event
	if err := s.events.FindOne(ctx, byID(id)).Decode(&e); err != nil {
		return charge.Event{}, fmt.Errorf("getting event %s: %w", id, translate(err))
	}
	if e.Merchant != merchant {
		return charge.Event{}, fmt.Errorf("getting event %s: %w", id, charge.ErrNotFound)
	}
	return e, nil
}

// ListEvents returns a page of merchant's events, newest first: at most limit (10 if it is
// not positive), only those of eventType when it is set, only those older than
// startingAfter when it is set. The bool reports whether older events matching remain.
func (s *Store) ListEvents(ctx context.Context, merchant, eventType string, limit int, startingAfter string) ([]charge.Event, bool, error) {
	filter := bson.D{{Key: "merchant", Value: merchant}}
	if eventType != "" {
		filter = append(filter, bson.E{Key: "type", Value: eventType})
	}
	if startingAfter != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: startingAfter}}})
	}
	events := []charge.Event{}
	hasMore, err := findPage(ctx, s.events, filter, listLimit(limit), &events)
	if err != nil {
		return nil, false, fmt.Errorf("listing events: %w", err)
	}
	return events, hasMore, nil
}
