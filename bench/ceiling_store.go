package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

const (
	insertBatch   = 100
	insertWriters = 4
	// docSize is the size of one document in BSON, about that of a stored charge.
	docSize = 400
)

// storeCeiling is the raw bulk insert rate into the same store.
type storeCeiling struct {
	docsPerSec float64
	docBytes   int
}

// measureInsert runs insertWriters clients, each inserting batches of insertBatch
// documents of about docSize bytes with one unordered InsertMany, for d, into a scratch
// database that is dropped afterwards. The client is set up as the store's (majority
// write concern).
func measureInsert(ctx context.Context, uri string, d time.Duration) (storeCeiling, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetWriteConcern(writeconcern.Majority()))
	if err != nil {
		return storeCeiling{}, err
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	db := client.Database(fmt.Sprintf("bench_scratch_%d", time.Now().UnixNano()))
	defer func() { _ = db.Drop(context.WithoutCancel(ctx)) }()
	coll := db.Collection("docs")

	pad, docBytes, err := padFor(docSize)
	if err != nil {
		return storeCeiling{}, err
	}
	batch := func(writer, n int) []any {
		docs := make([]any, insertBatch)
		for i := range docs {
			docs[i] = scratchDoc(fmt.Sprintf("doc_%d_%d_%d", writer, n, i), pad)
		}
		return docs
	}
	opts := options.InsertMany().SetOrdered(false)
	// The first insert creates the collection; it is not measured.
	if _, err := coll.InsertMany(ctx, batch(-1, 0), opts); err != nil {
		return storeCeiling{}, fmt.Errorf("InsertMany: %w", err)
	}

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
		errs  []error
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range insertWriters {
		wg.Go(func() {
			n := 0
			for time.Now().Before(deadline) {
				if _, err := coll.InsertMany(ctx, batch(w, n), opts); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				n++
			}
			mu.Lock()
			total += n * insertBatch
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return storeCeiling{}, fmt.Errorf("InsertMany: %w", err)
	}
	return storeCeiling{docsPerSec: perSecond(total, elapsed), docBytes: docBytes}, nil
}

// scratchDoc is a document shaped like a small charge.
func scratchDoc(id, pad string) bson.D {
	return bson.D{
		{Key: "_id", Value: id},
		{Key: "merchant", Value: benchMerchant},
		{Key: "amount", Value: int64(1999)},
		{Key: "currency", Value: "usd"},
		{Key: "status", Value: "succeeded"},
		{Key: "created_at", Value: time.Now()},
		{Key: "description", Value: pad},
	}
}

// padFor returns the padding that makes a scratch document about size bytes of BSON, and
// the size it makes.
func padFor(size int) (string, int, error) {
	raw, err := bson.Marshal(scratchDoc("doc_0_0_00", ""))
	if err != nil {
		return "", 0, err
	}
	pad := strings.Repeat("x", max(0, size-len(raw)))
	raw, err = bson.Marshal(scratchDoc("doc_0_0_00", pad))
	return pad, len(raw), err
}
