package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to reach past the store

	"github.com/billing/billing/internal/store"
)

// EnvStore names the environment variable that chooses the engine the tests of other
// packages run on: sqlite or mongodb (on BILLING_TEST_MONGO_URI, or the embedded
// FerretDB); the first of store.Engines by default.
const EnvStore = "BILLING_TEST_STORE"

// Engine is the engine the tests of other packages run on.
func Engine() string {
	if e := os.Getenv(EnvStore); e != "" {
		return e
	}
	return store.Engines[0]
}

// Config returns the configuration of a store of t's own on Engine: a database file in a
// temporary directory of t, or a database of its own on New's server.
func Config(t testing.TB) store.Config {
	t.Helper()
	if Engine() == store.EngineMongoDB {
		return store.Config{Engine: store.EngineMongoDB, MongoURI: New(t), MongoDatabase: Database(t)}
	}
	return store.Config{Engine: store.EngineSQLite, SQLitePath: filepath.Join(t.TempDir(), "store", "billing.db")}
}

// Open opens the store cfg locates, closed when t ends.
func Open(t testing.TB, cfg store.Config) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("opening the %s store: %v", cfg.Engine, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// DeleteRecord deletes the record id of table (a collection) past the store: for tests
// that damage what the store wrote.
func DeleteRecord(t testing.TB, cfg store.Config, table, id string) {
	t.Helper()
	ctx := context.Background()
	switch cfg.Engine {
	case store.EngineMongoDB:
		withMongo(t, cfg, func(db *mongo.Database) {
			if _, err := db.Collection(table).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
				t.Fatalf("deleting %s %s: %v", table, id, err)
			}
		})
	default:
		withSQLite(t, cfg, func(db *sql.DB) {
			if _, err := db.ExecContext(ctx, "DELETE FROM "+table+" WHERE id = ?", id); err != nil {
				t.Fatalf("deleting %s %s: %v", table, id, err)
			}
		})
	}
}

// Dump returns every record of cfg's store as text, table by table: for tests that search
// what was stored.
func Dump(t testing.TB, cfg store.Config) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	switch cfg.Engine {
	case store.EngineMongoDB:
		withMongo(t, cfg, func(db *mongo.Database) {
			names, err := db.ListCollectionNames(ctx, bson.D{})
			if err != nil {
				t.Fatalf("listing collections: %v", err)
			}
			for _, name := range names {
				cur, err := db.Collection(name).Find(ctx, bson.D{})
				if err != nil {
					t.Fatalf("reading %s: %v", name, err)
				}
				for cur.Next(ctx) {
					ext, err := bson.MarshalExtJSON(cur.Current, false, false)
					if err != nil {
						t.Fatalf("reading %s: %v", name, err)
					}
					fmt.Fprintf(&b, "%s %s\n", name, ext)
				}
				_ = cur.Close(ctx)
			}
		})
	default:
		withSQLite(t, cfg, func(db *sql.DB) {
			rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table'")
			if err != nil {
				t.Fatalf("listing tables: %v", err)
			}
			var tables []string
			for rows.Next() {
				var name string
				if err := rows.Scan(&name); err != nil {
					t.Fatalf("listing tables: %v", err)
				}
				tables = append(tables, name)
			}
			_ = rows.Close()
			for _, table := range tables {
				dumpTable(t, db, table, &b)
			}
		})
	}
	return b.String()
}

func dumpTable(t testing.TB, db *sql.DB, table string, b *strings.Builder) {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM "` + table + `"`)
	if err != nil {
		t.Fatalf("reading %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatalf("reading %s: %v", table, err)
	}
	values := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("reading %s: %v", table, err)
		}
		b.WriteString(table)
		for _, v := range values {
			if raw, ok := v.([]byte); ok {
				v = string(raw)
			}
			fmt.Fprintf(b, " %v", v)
		}
		b.WriteString("\n")
	}
}

func withMongo(t testing.TB, cfg store.Config, f func(*mongo.Database)) {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(cfg.MongoURI))
	if err != nil {
		t.Fatalf("connecting to MongoDB: %v", err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	f(client.Database(cfg.MongoDatabase))
}

func withSQLite(t testing.TB, cfg store.Config, f func(*sql.DB)) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+cfg.SQLitePath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatalf("opening %s: %v", cfg.SQLitePath, err)
	}
	defer db.Close()
	f(db)
}
