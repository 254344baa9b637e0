package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/store"
	"github.com/billing/billing/internal/store/mongostore"
	"github.com/billing/billing/internal/store/sqlitestore"
	"github.com/billing/billing/internal/storetest"
)

// The conformance suite: every behaviour of the store that the services rely on, run on
// every engine. The mongodb engine runs on the embedded FerretDB, or on the MongoDB that
// BILLING_TEST_MONGO_URI names.

func TestMain(m *testing.M) {
	code := storetest.Run(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// engine opens a store of one engine for one test.
type engine struct {
	name string
	open func(t *testing.T) *testBundle
}

var engines = []engine{
	{store.EngineSQLite, openSQLite},
	{store.EngineMongoDB, openMongo},
}

// testBundle is a store of its own for one test, and what the test may know of its engine.
type testBundle struct {
	store    store.Store
	merchant string
	// atomic: the engine applies a conditional write atomically (FerretDB does not).
	atomic bool
	// raw reads the stored form of the record id of table (collection), past the store.
	raw func(t *testing.T, table, id string) []byte
	// another opens another store on the same database, as another process would.
	another func(t *testing.T) store.Store
}

func (e engine) setup(t *testing.T) *testBundle {
	t.Helper()
	b := e.open(t)
	b.merchant = "acct_" + charge.NewID("m")
	return b
}

var conformance = []struct {
	name string
	test func(*testing.T, engine)
}{
	{"InsertCharges", testInsertCharges},
	{"ConcurrentInserts", testConcurrentInserts},
	{"GetChargeNotFound", testGetChargeNotFound},
	{"ChargesByID", testChargesByID},
	{"ListCharges", testListCharges},
	{"ClaimTransitions", testClaimTransitions},
	{"SaveCharges", testSaveCharges},
	{"Events", testEvents},
	{"DeadLetters", testDeadLetters},
	{"InsertEndpoint", testInsertEndpoint},
	{"SaveEndpoint", testSaveEndpoint},
	{"SetEndpointHealth", testSetEndpointHealth},
	{"ListEndpoints", testListEndpoints},
	{"EnabledEndpoints", testEnabledEndpoints},
	{"DisabledEndpoints", testDisabledEndpoints},
	{"DeleteEndpoint", testDeleteEndpoint},
	{"Runs", testRuns},
	{"Deliveries", testDeliveries},
	{"DeleteBefore", testDeleteBefore},
	{"LedgerAndBalance", testLedgerAndBalance},
	{"BalanceUnderRaces", testBalanceUnderRaces},
	{"Refunds", testRefunds},
	{"MetadataKeysOfEveryShape", testMetadataKeysOfEveryShape},
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) { c.test(t, e) })
			}
		})
	}
}

// openMongo opens the mongodb engine on a database of its own, dropped when the test ends.
func openMongo(t *testing.T) *testBundle {
	t.Helper()
	uri, database := storetest.New(t), storetest.Database(t)
	s, err := mongostore.Open(t.Context(), uri, database, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.DropDatabase(ctx))
		require.NoError(t, s.Close(ctx))
	})
	raw := func(t *testing.T, collection, id string) []byte {
		t.Helper()
		client, err := mongo.Connect(options.Client().ApplyURI(uri))
		require.NoError(t, err)
		defer func() { require.NoError(t, client.Disconnect(context.WithoutCancel(t.Context()))) }()
		doc, err := client.Database(database).Collection(collection).FindOne(t.Context(), bson.D{{Key: "_id", Value: id}}).Raw()
		require.NoError(t, err)
		return doc
	}
	another := func(t *testing.T) store.Store {
		t.Helper()
		s, err := mongostore.Open(t.Context(), uri, database, nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close(context.Background())) })
		return s
	}
	return &testBundle{store: s, atomic: s.AtomicConditions(), raw: raw, another: another}
}

// openSQLite opens the sqlite engine on a database file of its own, in a temporary
// directory removed when the test ends.
func openSQLite(t *testing.T) *testBundle {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store", "billing.db")
	s, err := sqlitestore.Open(t.Context(), path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close(context.Background())) })
	raw := func(t *testing.T, table, id string) []byte {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
		require.NoError(t, err)
		defer func() { require.NoError(t, db.Close()) }()
		rows, err := db.QueryContext(t.Context(), "SELECT * FROM "+table+" WHERE id = ?", id)
		require.NoError(t, err)
		defer func() { require.NoError(t, rows.Close()) }()
		require.True(t, rows.Next(), "no %s %s", table, id)
		columns, err := rows.Columns()
		require.NoError(t, err)
		values := make([]any, len(columns))
		ptrs := make([]any, len(columns))
		for i := range values {
			ptrs[i] = &values[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		var row []byte
		for i, v := range values {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			row = fmt.Appendf(row, "%s=%v\n", columns[i], v)
		}
		return row
	}
	another := func(t *testing.T) store.Store {
		t.Helper()
		s, err := sqlitestore.Open(t.Context(), path, nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close(context.Background())) })
		return s
	}
	return &testBundle{store: s, atomic: true, raw: raw, another: another}
}
