package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/billing/billing/internal/charge"
)

// deadLetterColumns are the columns scanDeadLetter reads, in its order.
const deadLetterColumns = "id, subject, data, reason, attempts, at, headers"

func scanDeadLetter(sc scanner) (charge.DeadLetter, error) {
	var d charge.DeadLetter
	var attempts, at int64
	var headers sql.NullString
	if err := sc.Scan(&d.ID, &d.Subject, &d.Data, &d.Reason, &attempts, &at, &headers); err != nil {
		return charge.DeadLetter{}, err
	}
	d.Attempts, d.At = uint64(attempts), fromMillis(at)
	if headers.Valid {
		if err := json.Unmarshal([]byte(headers.String), &d.Headers); err != nil {
			return charge.DeadLetter{}, fmt.Errorf("dead letter %s: headers: %w", d.ID, err)
		}
	}
	return d, nil
}

// InsertDeadLetters records commands given up on, in one transaction. It is idempotent
// by id: a dead letter already recorded is left as it is.
func (s *Store) InsertDeadLetters(ctx context.Context, ds []charge.DeadLetter) error {
	const insert = "INSERT INTO dead_letters (" + deadLetterColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
	_, err := s.insertBatch(ctx, insert, len(ds), func(i int) ([]any, error) {
		d := ds[i]
		var headers any
		if len(d.Headers) > 0 {
			b, err := json.Marshal(d.Headers)
			if err != nil {
				return nil, err
			}
			headers = string(b)
		}
		return []any{d.ID, d.Subject, d.Data, d.Reason, int64(d.Attempts), millis(d.At), headers}, nil
	})
	return s.wrap(fmt.Sprintf("inserting %d dead letters", len(ds)), err)
}

// DeadLetters returns every dead letter, by id. It is meant for operators and tests: the
// table stays small because only messages given up on land there, and a replay removes them.
func (s *Store) DeadLetters(ctx context.Context) ([]charge.DeadLetter, error) {
	rows, err := s.query(ctx, "SELECT "+deadLetterColumns+" FROM dead_letters ORDER BY id")
	if err != nil {
		return nil, s.wrap("reading dead letters", err)
	}
	ds, err := scanAll(rows, scanDeadLetter)
	if err != nil {
		return nil, s.wrap("reading dead letters", err)
	}
	return ds, nil
}

// DeleteDeadLetter removes the dead letter id, once replayed. One already gone is no
// error.
func (s *Store) DeleteDeadLetter(ctx context.Context, id string) error {
	_, err := s.exec(ctx, "DELETE FROM dead_letters WHERE id = ?", id)
	return s.wrap("deleting dead letter "+id, err)
}
