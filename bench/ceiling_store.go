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

	"github.com/billing/billing/internal/store"
)

const (
	insertBatch   = 100
	insertWriters = 4
	// docSize is the size of one document in BSON, or of one row, about that of a
	// stored charge.
	docSize = 400
)

// storeCeiling is the raw bulk insert rate into the same store: ceiling c.
type storeCeiling struct {
	engine     string
	writers    int
	docsPerSec float64
	docBytes   int
}

// what says what ceiling c measured, for the report.
func (c storeCeiling) what() string {
	if c.engine == store.EngineSQLite {
		return fmt.Sprintf("c. SQLite INSERT, transactions of %d, %d writer (rows/s)", insertBatch, c.writers)
	}
	return fmt.Sprintf("c. store InsertMany of %d × %d (docs/s)", insertBatch, c.writers)
}

// unit names what ceiling c inserted, for the report.
func (c storeCeiling) unit() string {
	if c.engine == store.EngineSQLite {
		return fmt.Sprintf("rows of %d B (id, merchant, status, time, JSON), primary key only, WAL, synchronous=FULL, one writer: "+
			"SQLite writes one transaction at a time (%d writers on separate connections measured no faster)", c.docBytes, insertWriters)
	}
	return fmt.Sprintf("documents of %d B of BSON, _id index only", c.docBytes)
}

// measureStoreCeiling measures ceiling c on the stack's engine for d.
func measureStoreCeiling(ctx context.Context, st *stack, d time.Duration) (storeCeiling, error) {
	if st.engine == store.EngineSQLite {
		return measureSQLiteInsert(ctx, st.sqliteScratchPath(), d)
	}
	return measureInsert(ctx, st.mongoURI(), d)
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
	return storeCeiling{engine: store.EngineMongoDB, writers: insertWriters, docsPerSec: perSecond(total, elapsed), docBytes: docBytes}, nil
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
