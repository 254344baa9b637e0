package mongostore

import (
	"context"
	"fmt"
	"time"

	"github.com/billing/billing/internal/charge"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// eventDoc is an event as the events collection stores it.
type eventDoc struct {
	ID        string       `bson:"_id"`
	Merchant  string       `bson:"merchant"`
	Type      string       `bson:"type"`
	ChargeID  string       `bson:"charge_id"`
	Sequence  int          `bson:"sequence"`
	CreatedAt time.Time    `bson:"created_at"`
	Data      eventDataDoc `bson:"data"`
}

// eventDataDoc is the payload of an event: its charge and, for refund events, the refund.
type eventDataDoc struct {
	Object chargeDoc  `bson:"object"`
	Refund *refundDoc `bson:"refund,omitempty"`
}

func newEventDoc(e charge.Event) eventDoc {
	return eventDoc{
		ID:        e.ID,
		Merchant:  e.Merchant,
		Type:      e.Type,
		ChargeID:  e.ChargeID,
		Sequence:  e.Sequence,
		CreatedAt: e.CreatedAt,
		Data: eventDataDoc{
			Object: newChargeDoc(e.Data.Object),
			Refund: mapPtr(e.Data.Refund, newRefundDoc),
		},
	}
}

func (d eventDoc) toEvent() charge.Event {
	return charge.Event{
		ID:        d.ID,
		Merchant:  d.Merchant,
		Type:      d.Type,
		ChargeID:  d.ChargeID,
		Sequence:  d.Sequence,
		CreatedAt: d.CreatedAt,
		Data: charge.EventData{
			Object: d.Data.Object.toCharge(),
			Refund: mapPtr(d.Data.Refund, refundDoc.toRefund),
		},
	}
}

// InsertEvents writes events in one unordered insert. It is idempotent by event id: an
// event already stored is left as it is and is not an error.
func (s *Store) InsertEvents(ctx context.Context, es []charge.Event) error {
	if err := insertAll(ctx, s.events, mapSlice(es, newEventDoc)); err != nil {
		return fmt.Errorf("inserting %d events: %w", len(es), err)
	}
	return nil
}

// GetEvent returns the event id of merchant as stored (call Public before showing it). It
// returns charge.ErrNotFound if there is no such event or it belongs to another merchant.
func (s *Store) GetEvent(ctx context.Context, merchant, id string) (charge.Event, error) {
	var d eventDoc
	if err := s.findOwned(ctx, s.events, merchant, id, &d); err != nil {
		return charge.Event{}, fmt.Errorf("getting event %s: %w", id, err)
	}
	return d.toEvent(), nil
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
	events, hasMore, err := findPage(ctx, s.events, filter, listLimit(limit), eventDoc.toEvent)
	if err != nil {
		return nil, false, fmt.Errorf("listing events: %w", err)
	}
	return events, hasMore, nil
}
