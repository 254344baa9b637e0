package mongostore

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/billing/billing/internal/charge"
)

// idParallelism bounds the single-document operations one Store runs at once.
//
// Batches are read and updated one document at a time, by id, rather than with $in or a
// bulk write of updates, because of the embedded FerretDB on SQLite: it pushes only a bare
// {_id: x} filter down to SQL (any other filter scans and decodes the whole collection),
// and each update statement of a bulk write holds a pooled connection until the whole
// command ends, so a bulk of about a hundred updates exhausts its pool of 100 and
// deadlocks. A few concurrent lookups by id are fast on both servers.
const idParallelism = 8

func byID(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

// byMerchantID returns the filter of the document id of merchant. On MongoDB it is
// {merchant, _id}: on a collection sharded by merchant (store.go) mongos sends the read to
// the one shard that holds the merchant, where a bare _id would go to every shard. On
// FerretDB it is the bare {_id}, the only filter FerretDB turns into an indexed lookup (it
// scans the collection for any other), and the merchant is checked in Go (findOwned).
func (s *Store) byMerchantID(merchant, id string) bson.D {
	if s.ferret {
		return byID(id)
	}
	return bson.D{{Key: "merchant", Value: merchant}, {Key: "_id", Value: id}}
}

// findOwned decodes into out the document id of coll if it belongs to merchant. It returns
// charge.ErrNotFound if there is no such document or it belongs to another merchant.
func (s *Store) findOwned(ctx context.Context, coll *mongo.Collection, merchant, id string, out any) error {
	res := coll.FindOne(ctx, s.byMerchantID(merchant, id))
	if s.ferret {
		raw, err := res.Raw()
		if err != nil {
			return translate(err)
		}
		if owner, _ := raw.Lookup("merchant").StringValueOK(); owner != merchant {
			return charge.ErrNotFound
		}
	}
	return translate(res.Decode(out))
}

// eachID runs f for every id, at most idParallelism at once, and returns the first error.
func (s *Store) eachID(ctx context.Context, ids []string, f func(ctx context.Context, id string) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(idParallelism)
	for _, id := range ids {
		g.Go(func() error { return f(ctx, id) })
	}
	return g.Wait()
}

// inBatch bounds the ids of one $in lookup.
const inBatch = 1000

// findEach reads the documents (of type D) with the given ids from coll and returns them
// as from makes them, keyed by id; missing ids are absent from the result. On MongoDB it
// asks for inBatch ids at a time with $in, which the _id index answers; on FerretDB,
// which would scan the collection for $in, it looks each id up by itself.
func findEach[D, T any](ctx context.Context, s *Store, coll *mongo.Collection, ids []string, from func(D) T) (map[string]T, error) {
	found := make(map[string]T, len(ids))
	if !s.ferret {
		for batch := range slices.Chunk(ids, inBatch) {
			cur, err := coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: batch}}}})
			if err != nil {
				return nil, translate(err)
			}
			for cur.Next(ctx) {
				var d D
				if err := cur.Decode(&d); err != nil {
					_ = cur.Close(ctx)
					return nil, err
				}
				id, _ := cur.Current.Lookup("_id").StringValueOK()
				found[id] = from(d)
			}
			err = cur.Err()
			_ = cur.Close(ctx)
			if err != nil {
				return nil, translate(err)
			}
		}
		return found, nil
	}
	var mu sync.Mutex
	err := s.eachID(ctx, ids, func(ctx context.Context, id string) error {
		var d D
		err := coll.FindOne(ctx, byID(id)).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		if err != nil {
			return translate(err)
		}
		mu.Lock()
		found[id] = from(d)
		mu.Unlock()
		return nil
	})
	return found, err
}

// insertAll inserts docs in one unordered insert; documents whose id is already taken
// are left as they are (idempotent writes by ids decided before the write).
func insertAll[T any](ctx context.Context, coll *mongo.Collection, docs []T) error {
	_, err := insertNew(ctx, coll, docs)
	return err
}

// insertNew inserts docs in one unordered insert and returns the indexes of the documents
// whose id was already taken, which are left as they are. An insert is the one write that
// both MongoDB and FerretDB arbitrate atomically, and the cheapest FerretDB does in bulk.
func insertNew[T any](ctx context.Context, coll *mongo.Collection, docs []T) ([]int, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	all := make([]any, len(docs))
	for i, d := range docs {
		all[i] = d
	}
	_, err := coll.InsertMany(ctx, all, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if err == nil || !errors.As(err, &bwe) {
		return nil, translate(err)
	}
	var taken []int
	for _, we := range bwe.WriteErrors {
		if duplicateKeyCodes[we.Code] {
			taken = append(taken, we.Index)
		}
	}
	return taken, translate(withoutDuplicates(err))
}

func keys[V any](m map[string]V) []string { return slices.Collect(maps.Keys(m)) }
