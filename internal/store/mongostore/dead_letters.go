package mongostore

import (
	"context"
	"fmt"

	"github.com/billing/billing/internal/charge"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// InsertDeadLetters records commands given up on, in one unordered bulk write. It is
// idempotent by id: a dead letter already recorded is left as it is.
func (s *Store) InsertDeadLetters(ctx context.Context, ds []charge.DeadLetter) error {
	if len(ds) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, 0, len(ds))
	for _, d := range ds {
		m, err := setOnInsert(d)
		if err != nil {
			return fmt.Errorf("encoding dead letter %s: %w", d.ID, err)
		}
		models = append(models, m)
	}
	_, err := s.deadLetters.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if err := withoutDuplicates(err); err != nil {
		return fmt.Errorf("inserting %d dead letters: %w", len(ds), translate(err))
	}
	return nil
}

// DeadLetters returns every dead letter, by id. It is meant for operators and tests: the
// collection stays small because only commands that exhausted their attempts land there.
func (s *Store) DeadLetters(ctx context.Context) ([]charge.DeadLetter, error) {
	cur, err := s.deadLetters.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("reading dead letters: %w", translate(err))
	}
	ds := []charge.DeadLetter{}
	if err := cur.All(ctx, &ds); err != nil {
		return nil, fmt.Errorf("reading dead letters: %w", translate(err))
	}
	return ds, nil
}
