package ferret

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Lookups by id must not scan the collection: FerretDB's own index does not serve its own
// query, and without ours a lookup in 20,000 documents takes about 40 ms (0.4 ms with it).
// The bound below (20 ms a lookup) sits a factor of twenty or more from both.
func TestLookupsByIDUseAnIndex(t *testing.T) {
	t.Parallel()
	srv, err := Start(t.Context(), t.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	coll := client.Database("plans").Collection("charges")
	const n = 20_000
	for i := 0; i < n; i += 1000 {
		docs := make([]any, 1000)
		for j := range docs {
			docs[j] = bson.D{{Key: "_id", Value: fmt.Sprintf("ch_%06d", i+j)}, {Key: "amount", Value: i + j}}
		}
		if _, err := coll.InsertMany(t.Context(), docs); err != nil {
			t.Fatal(err)
		}
	}
	// The indexer adds the index within a second or so of the collection's creation: poll
	// until ten lookups are fast, or fail at the deadline.
	lookups := func() time.Duration {
		start := time.Now()
		for i := range 10 {
			var out bson.M
			if err := coll.FindOne(t.Context(), bson.D{{Key: "_id", Value: fmt.Sprintf("ch_%06d", n-1-i)}}).Decode(&out); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		took := lookups()
		if took < 200*time.Millisecond {
			t.Logf("10 lookups by id in %d documents: %s", n, took)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 lookups by id in %d documents still take %s: they scan", n, took)
		}
	}
}
