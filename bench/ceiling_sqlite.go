package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the driver the sqlite engine uses, as "sqlite"

	"github.com/billing/billing/internal/store"
)

// sqliteWriters is how many writers ceiling c has on sqlite: SQLite writes one transaction
// at a time, whatever the number of connections (4 writers on 4 connections, each waiting
// for the lock with busy_timeout, measured no faster than 1 on this machine), and the
// engine itself writes through one connection per process.
const sqliteWriters = 1

// sqliteScratchPath is the file of ceiling c on sqlite: beside the store's, so on the
// same file system.
func (s *stack) sqliteScratchPath() string {
	return filepath.Join(filepath.Dir(s.sqlitePath), "bench-scratch.db")
}

// measureSQLiteInsert inserts rows of about docSize bytes into a table with only its
// primary key, in transactions of insertBatch rows (BEGIN IMMEDIATE, one prepared INSERT
// run per row, as the engine does), for d, into a scratch database file at path, with the
// engine's pragmas (WAL, synchronous=FULL). The file is removed afterwards.
func measureSQLiteInsert(ctx context.Context, path string, d time.Duration) (c storeCeiling, err error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return c, err
	}
	db.SetMaxOpenConns(sqliteWriters)
	defer func() {
		err = errors.Join(err, db.Close())
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if rerr := os.Remove(path + suffix); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
		}
	}()
	if _, err := db.ExecContext(ctx, `CREATE TABLE docs (
	id         TEXT PRIMARY KEY,
	merchant   TEXT NOT NULL,
	status     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	doc        TEXT NOT NULL
) STRICT`); err != nil {
		return c, fmt.Errorf("creating the scratch table: %w", err)
	}

	pad, rowBytes := sqlitePad(docSize)
	insert := func(n int) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }() // a no-op after Commit
		stmt, err := tx.PrepareContext(ctx, "INSERT INTO docs (id, merchant, status, created_at, doc) VALUES (?, ?, ?, ?, ?)")
		if err != nil {
			return err
		}
		defer stmt.Close()
		now := time.Now().UnixMilli()
		for i := range insertBatch {
			if _, err := stmt.ExecContext(ctx, sqliteRowID(n, i), benchMerchant, "succeeded", now, pad); err != nil {
				return err
			}
		}
		return tx.Commit()
	}
	// The first transaction warms the connection up; it is not measured.
	if err := insert(-1); err != nil {
		return c, fmt.Errorf("INSERT: %w", err)
	}
	total := 0
	start := time.Now()
	deadline := start.Add(d)
	for n := 0; time.Now().Before(deadline); n++ {
		if err := insert(n); err != nil {
			return c, fmt.Errorf("INSERT: %w", err)
		}
		total += insertBatch
	}
	return storeCeiling{engine: store.EngineSQLite, writers: sqliteWriters, docsPerSec: perSecond(total, time.Since(start)), docBytes: rowBytes}, nil
}

// sqliteRowID is the id of row i of transaction n.
func sqliteRowID(n, i int) string { return fmt.Sprintf("doc_%08d_%03d", n, i) }

// sqlitePad returns the JSON column that makes a scratch row about size bytes of values
// (the record's payload, without SQLite's own overhead), and the size it makes.
func sqlitePad(size int) (string, int) {
	fixed := len(sqliteRowID(0, 0)) + len(benchMerchant) + len("succeeded") + 8
	wrap := `{"description":""}`
	pad := `{"description":"` + strings.Repeat("x", max(0, size-fixed-len(wrap))) + `"}`
	return pad, fixed + len(pad)
}
