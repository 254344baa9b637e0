package ferret

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
)

// idIndexEvery is how often new collections get their id index.
const idIndexEvery = time.Second

// indexIDs keeps an index on the expression FerretDB 1.24 looks documents up by, on every
// collection table under dir, until ctx ends.
//
// FerretDB's SQLite backend finds a document by id with `_ferretdb_sjson->'$._id' = ?`,
// but indexes `_ferretdb_sjson->"_id"`: SQLite cannot use that index for the expression,
// so every lookup and update by id scans the table (measured: 3.7 ms at 1,000 documents,
// 229 ms at 64,000; 0.3 ms with this index). The index is SQLite's own, invisible to
// FerretDB's index metadata, and dropped with its table.
func indexIDs(ctx context.Context, dir string, logger *slog.Logger) {
	dbs := map[string]*sql.DB{}
	defer func() {
		for _, db := range dbs {
			_ = db.Close()
		}
	}()
	done := map[string]bool{} // "file\x00table" already indexed
	t := time.NewTicker(idIndexEvery)
	defer t.Stop()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, f := range files {
			db, ok := dbs[f]
			if !ok {
				var err error
				// The driver FerretDB registers (modernc.org/sqlite, pure Go).
				if db, err = sql.Open("sqlite", "file:"+f+"?_pragma=busy_timeout(5000)"); err != nil {
					continue
				}
				db.SetMaxOpenConns(1)
				dbs[f] = db
			}
			if err := indexTables(ctx, db, f, done); err != nil && ctx.Err() == nil {
				logger.Debug("indexing FerretDB ids", "file", f, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func indexTables(ctx context.Context, db *sql.DB, file string, done map[string]bool) error {
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM "_ferretdb_collections"`)
	if err != nil {
		return err // not a FerretDB database yet
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err == nil {
			tables = append(tables, t)
		}
	}
	_ = rows.Close()
	for _, table := range tables {
		key := file + "\x00" + table
		if done[key] {
			continue
		}
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, table+"_billing_id", table)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		done[key] = true
	}
	return nil
}
