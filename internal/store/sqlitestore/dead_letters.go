package sqlitestore

import (
	"context"
	"fmt"

	"github.com/billing/billing/internal/charge"
)

// deadLetterColumns are the columns scanDeadLetter reads, in its order.
const deadLetterColumns = "id, subject, data, reason, attempts, at"

func scanDeadLetter(sc scanner) (charge.DeadLetter, error) {
	var d charge.DeadLetter
	var attempts, at int64
	if err := sc.Scan(&d.ID, &d.Subject, &d.Data, &d.Reason, &attempts, &at); err != nil {
		return charge.DeadLetter{}, err
	}
	d.Attempts, d.At = uint64(attempts), fromMillis(at)
	return d, nil
}

// InsertDeadLetters records commands given up on, in one transaction. It is idempotent
// by id: a dead letter already recorded is left as it is.
func (s *Store) InsertDeadLetters(ctx context.Context, ds []charge.DeadLetter) error {
	const insert = "INSERT INTO dead_letters (" + deadLetterColumns + ") VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
	_, err := s.insertBatch(ctx, insert, len(ds), func(i int) ([]any, error) {
		d := ds[i]
		return []any{d.ID, d.Subject, d.Data, d.Reason, int64(d.Attempts), millis(d.At)}, nil
	})
	return s.wrap(fmt.Sprintf("inserting %d dead letters", len(ds)), err)
}

// DeadLetters returns every dead letter, by id. It is meant for operators and tests: the
// table stays small because only commands that exhausted their attempts land there.
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
