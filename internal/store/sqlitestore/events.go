package sqlitestore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/billing/billing/internal/charge"
)

// eventDataRow is a charge.EventData: the charge as the transition left it (every field,
// the internal ones included) and, for refund events, the refund.
type eventDataRow struct {
	Object chargeRow  `json:"object"`
	Refund *refundRow `json:"refund,omitempty"`
}

// eventColumns are the columns scanEvent reads, in its order.
const eventColumns = "id, merchant, type, charge_id, sequence, created_at, data"

func scanEvent(sc scanner) (charge.Event, error) {
	var e charge.Event
	var createdAt int64
	var data []byte
	if err := sc.Scan(&e.ID, &e.Merchant, &e.Type, &e.ChargeID, &e.Sequence, &createdAt, &data); err != nil {
		return charge.Event{}, err
	}
	var d eventDataRow
	if err := json.Unmarshal(data, &d); err != nil {
		return charge.Event{}, fmt.Errorf("decoding event %s: %w", e.ID, err)
	}
	e.CreatedAt = fromMillis(createdAt)
	e.Data.Object = d.Object.charge()
	if d.Refund != nil {
		r := d.Refund.refund()
		e.Data.Refund = &r
	}
	return e, nil
}

// InsertEvents writes events in one transaction. It is idempotent by event id: an event
// already stored is left as it is and is not an error.
func (s *Store) InsertEvents(ctx context.Context, es []charge.Event) error {
	const insert = "INSERT INTO events (" + eventColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
	_, err := s.insertBatch(ctx, insert, len(es), func(i int) ([]any, error) {
		e := es[i]
		d := eventDataRow{Object: toChargeRow(e.Data.Object)}
		if e.Data.Refund != nil {
			r := toRefundRow(*e.Data.Refund)
			d.Refund = &r
		}
		data, err := json.Marshal(d)
		if err != nil {
			return nil, rejected("encoding event %s: %v", e.ID, err)
		}
		return []any{e.ID, e.Merchant, e.Type, e.ChargeID, e.Sequence, millis(e.CreatedAt), string(data)}, nil
	})
	return s.wrap(fmt.Sprintf("inserting %d events", len(es)), err)
}

// GetEvent returns the event id of merchant as stored (call Public before showing it). It
// returns charge.ErrNotFound if there is no such event or it belongs to another merchant.
func (s *Store) GetEvent(ctx context.Context, merchant, id string) (charge.Event, error) {
	row := s.queryRow(ctx, "SELECT "+eventColumns+" FROM events WHERE id = ? AND merchant = ?", id, merchant)
	e, err := scanEvent(row)
	if err != nil {
		return charge.Event{}, s.wrap(fmt.Sprintf("getting event %s", id), err)
	}
	return e, nil
}

// ListEvents returns a page of merchant's events, newest first: at most limit (10 if it is
// not positive), only those of eventType when it is set, only those older than
// startingAfter when it is set. The bool reports whether older events matching remain.
func (s *Store) ListEvents(ctx context.Context, merchant, eventType string, limit int, startingAfter string) ([]charge.Event, bool, error) {
	q := page{columns: eventColumns, table: "events"}
	q.and("merchant = ?", merchant)
	if eventType != "" {
		q.and("type = ?", eventType)
	}
	events, hasMore, err := list(ctx, s, q, limit, startingAfter, scanEvent)
	if err != nil {
		return nil, false, s.wrap("listing events", err)
	}
	return events, hasMore, nil
}
