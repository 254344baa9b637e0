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

// deadLetterDoc is a dead letter as the dead_letters collection stores it.
type deadLetterDoc struct {
	ID       string            `bson:"_id"`
	Subject  string            `bson:"subject"`
	Data     []byte            `bson:"data"`
	Headers  map[string]string `bson:"headers,omitempty"`
	Reason   string            `bson:"reason"`
	Attempts uint64            `bson:"attempts"`
	At       time.Time         `bson:"at"`
}

func newDeadLetterDoc(d charge.DeadLetter) deadLetterDoc {
	return deadLetterDoc{ID: d.ID, Subject: d.Subject, Data: d.Data, Headers: d.Headers, Reason: d.Reason, Attempts: d.Attempts, At: d.At}
}

func (d deadLetterDoc) toDeadLetter() charge.DeadLetter {
	return charge.DeadLetter{ID: d.ID, Subject: d.Subject, Data: d.Data, Headers: d.Headers, Reason: d.Reason, Attempts: d.Attempts, At: d.At}
}

// InsertDeadLetters records commands given up on, in one unordered bulk write. It is
// idempotent by id: a dead letter already recorded is left as it is.
func (s *Store) InsertDeadLetters(ctx context.Context, ds []charge.DeadLetter) error {
	if len(ds) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, 0, len(ds))
	for _, d := range ds {
		m, err := setOnInsert(newDeadLetterDoc(d))
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
// collection stays small because only messages given up on land there, and a replay
// removes them.
func (s *Store) DeadLetters(ctx context.Context) ([]charge.DeadLetter, error) {
	cur, err := s.deadLetters.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("reading dead letters: %w", translate(err))
	}
	var docs []deadLetterDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("reading dead letters: %w", translate(err))
	}
	ds := make([]charge.DeadLetter, len(docs))
	for i, d := range docs {
		ds[i] = d.toDeadLetter()
	}
	return ds, nil
}

// DeleteDeadLetter removes the dead letter id, once replayed. One already gone is no
// error.
func (s *Store) DeleteDeadLetter(ctx context.Context, id string) error {
	if _, err := s.deadLetters.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("deleting dead letter %s: %w", id, translate(err))
	}
	return nil
}
