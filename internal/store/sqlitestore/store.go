// Package sqlitestore is the sqlite engine of the store (package store), the embedded
// default: one database file on one machine, shared by the ingest and any number of
// worker processes there. It is the only package that speaks SQL: driver errors are
// translated here into the sentinel errors of package charge.
//
// The file is in WAL mode, so readers never wait for the writer. Each process writes
// through one connection, in BEGIN IMMEDIATE transactions: the write lock is taken at
// the start, so a transaction never fails half-way because another process wrote first,
// and processes queue for the lock for up to busyTimeout. Every batch is written in one
// transaction with synchronous=FULL: a process killed mid-batch leaves all of it or none.
// Every write is idempotent by a key decided before it (docs/design.md, rule 1): inserts are
// INSERT ... ON CONFLICT DO NOTHING, and the rows each one affected tell new from already
// stored.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/billing/billing/internal/charge"
)

const (
	// busyTimeout is how long a statement waits for a lock another connection holds
	// (mostly: another process's write transaction) before failing with SQLITE_BUSY.
	busyTimeout = 10 * time.Second
	// readConns is the size of the read pool. Reads in WAL mode run in parallel with
	// each other and with the writer; a few cover a process's concurrent requests.
	readConns = 4
	// defaultListLimit is the page size of a list call that asks for none.
	defaultListLimit = 10
	// deleteChunk is how many rows DeleteBefore deletes per transaction.
	deleteChunk = 1000
)

// Store reads and writes the billing tables of one SQLite database file. It is safe for
// concurrent use, and any number of Stores, in any number of processes, may share the
// file.
type Store struct {
	// write has one connection: SQLite has one writer at a time anyway, and queueing
	// this process's writers in database/sql costs less than having them wait on the
	// file lock.
	write *sql.DB
	// read is the read pool: each query reads a snapshot, whatever is being written.
	read *sql.DB

	closed atomic.Bool
	logger *slog.Logger

	// traceSQL, when set (only by tests, before use), is called with every statement the
	// store runs or prepares.
	traceSQL func(query string)
}

// Open opens the database file at path, creating it (0600) and its directory (0700) if
// they are missing, and creates or upgrades its schema. A nil logger discards.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("opening SQLite database: no path")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening SQLite database %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the directory of SQLite database %s: %w", path, err)
	}
	if err := create(path); err != nil {
		return nil, fmt.Errorf("creating SQLite database %s: %w", path, err)
	}

	write, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("opening SQLite database %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	read, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("opening SQLite database %s: %w", path, err)
	}
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)
	s := &Store{write: write, read: read, logger: logger}

	from, to, err := migrateRetrying(ctx, write)
	if err != nil {
		_ = read.Close()
		_ = write.Close()
		return nil, fmt.Errorf("creating the schema of SQLite database %s: %w", path, translate(err))
	}
	if from != to {
		logger.InfoContext(ctx, "store schema upgraded", "path", path, "from", from, "to", to)
	}
	logger.DebugContext(ctx, "store opened", "path", path)
	return s, nil
}

// migrateRetrying is migrate, tried again while the database is busy. The first
// connection to a new file switches it to WAL, which needs the file to itself: when several
// processes (or Stores) open a new file at once, SQLite can answer one of them busy at once,
// without waiting, rather than let two wait for each other; that one tries again.
func migrateRetrying(ctx context.Context, db *sql.DB) (from, to int, err error) {
	delay := 10 * time.Millisecond
	deadline := time.Now().Add(busyTimeout)
	for {
		from, to, err = migrate(ctx, db)
		if err == nil || !errors.Is(translate(err), charge.ErrUnavailable) || time.Now().After(deadline) {
			return from, to, err
		}
		select {
		case <-ctx.Done():
			return from, to, err
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// creating serialises create within the process.
var creating sync.Mutex

// create creates an empty file at path, 0600, if there is none. It is created here rather
// than by SQLite, which would make it 0644 (its -wal and -shm files take the database
// file's permissions). An existing file is not opened: closing any descriptor of a file
// drops every POSIX lock the process holds on it, those of SQLite connections of other
// Stores of this process included. A file this call creates is new, and no connection
// can hold a lock on it before the descriptor is closed: every Open of the process
// passes here first.
func create(path string) error {
	creating.Lock()
	defer creating.Unlock()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil // another process created it meanwhile
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// dsn is the data source name of the database file at path for the write pool or the
// read pool. Every connection waits busyTimeout for locks. The write pool's connection
// sets journal_mode=WAL, which is persistent (Open writes before it reads, so the file is
// in WAL mode before a reader opens it), and synchronous=FULL, which makes a commit
// durable when it returns; its transactions are BEGIN IMMEDIATE (_txlock). The read
// pool's connections cannot write (query_only).
func dsn(path string, write bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
	if write {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Set("_query_only", "1")
		q.Add("_pragma", "cache_size(-32768)")
	}
	// A file: URI, with the path escaped, so that a '?' or '#' in it is not taken for
	// the start of the parameters.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Close closes the database. Calls in progress finish; later ones fail with
// charge.ErrUnavailable.
func (s *Store) Close(context.Context) error {
	s.closed.Store(true)
	errRead, errWrite := s.read.Close(), s.write.Close()
	if err := errors.Join(errRead, errWrite); err != nil {
		return fmt.Errorf("closing SQLite database: %w", err)
	}
	return nil
}

// Ping checks that the database file can be read. Readiness probes call it.
func (s *Store) Ping(ctx context.Context) error {
	var v int
	if err := s.queryRow(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return s.wrap("pinging SQLite database", err)
	}
	return nil
}

// wrap returns err, translated, with what was being done; nil if err is nil. Any error
// of a closed store is charge.ErrUnavailable.
func (s *Store) wrap(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case s.closed.Load():
		return fmt.Errorf("%s: %w: the store is closed: %w", what, charge.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, translate(err))
}

// translate turns a driver error into one that callers can match with errors.Is against
// the sentinels of package charge: no row is charge.ErrNotFound; a lock still held by
// another connection after busyTimeout, an I/O error, a full disk or a deadline is
// charge.ErrUnavailable (retry); a value the schema refuses is charge.ErrRejected (the
// same write would fail again). Other errors are returned as they are.
func translate(err error) error {
	var se *sqlite.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return charge.ErrNotFound
	case errors.Is(err, charge.ErrNotFound), errors.Is(err, charge.ErrUnavailable), errors.Is(err, charge.ErrRejected):
		return err
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, sql.ErrConnDone):
		return fmt.Errorf("%w: %w", charge.ErrUnavailable, err)
	case !errors.As(err, &se):
		return err
	}
	switch code := se.Code(); {
	case rejectedCodes[code]:
		return fmt.Errorf("%w: %w", charge.ErrRejected, err)
	case unavailableCodes[code&0xff]:
		return fmt.Errorf("%w: %w", charge.ErrUnavailable, err)
	}
	return err
}

// unavailableCodes are the primary result codes of a database that cannot take the
// request now but may later.
var unavailableCodes = map[int]bool{
	sqlite3.SQLITE_BUSY:      true,
	sqlite3.SQLITE_LOCKED:    true,
	sqlite3.SQLITE_IOERR:     true,
	sqlite3.SQLITE_FULL:      true,
	sqlite3.SQLITE_PROTOCOL:  true,
	sqlite3.SQLITE_INTERRUPT: true,
}

// rejectedCodes are the extended result codes of a row the schema refuses: the fault is
// the row's, not the database's, and writing it again would fail again. (The duplicate
// keys of idempotent inserts are no error at all: they are ON CONFLICT DO NOTHING.)
var rejectedCodes = map[int]bool{
	sqlite3.SQLITE_TOOBIG:                true,
	sqlite3.SQLITE_MISMATCH:              true,
	sqlite3.SQLITE_CONSTRAINT_CHECK:      true,
	sqlite3.SQLITE_CONSTRAINT_NOTNULL:    true,
	sqlite3.SQLITE_CONSTRAINT_DATATYPE:   true,
	sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY: true,
	sqlite3.SQLITE_CONSTRAINT_UNIQUE:     true,
}

// rejected marks an error that a record itself causes (it cannot be encoded, or breaks an
// invariant of the schema) as charge.ErrRejected.
func rejected(format string, args ...any) error {
	return fmt.Errorf("%w: %s", charge.ErrRejected, fmt.Sprintf(format, args...))
}

// trace tells traceSQL about query, if it is set.
func (s *Store) trace(query string) {
	if s.traceSQL != nil {
		s.traceSQL(query)
	}
}

// query runs a read on the read pool.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s.trace(query)
	return s.read.QueryContext(ctx, query, args...)
}

// queryRow runs a read of one row on the read pool.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	s.trace(query)
	return s.read.QueryRowContext(ctx, query, args...)
}

// exec runs one write statement on its own, outside a transaction of ours: a single
// statement is atomic, and takes the write lock as it starts.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s.trace(query)
	return s.write.ExecContext(ctx, query, args...)
}

// writeTx is a write transaction: BEGIN IMMEDIATE on the write pool's connection.
type writeTx struct {
	s  *Store
	tx *sql.Tx
}

// inTx runs f in one write transaction, committed if f returns nil and rolled back
// otherwise.
func (s *Store) inTx(ctx context.Context, f func(tx writeTx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(writeTx{s: s, tx: tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// prepare prepares query for the rows of a batch; the caller closes it.
func (tx writeTx) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	tx.s.trace(query)
	return tx.tx.PrepareContext(ctx, query)
}

// insertEach runs the prepared insert stmt with the arguments of each row in turn, and
// returns the indexes of the rows it did not insert: those whose key was already taken
// (the insert is ON CONFLICT DO NOTHING), by an earlier transaction or by an earlier row
// of the same batch.
func insertEach(ctx context.Context, stmt *sql.Stmt, n int, args func(i int) ([]any, error)) (taken []int, err error) {
	for i := range n {
		a, err := args(i)
		if err != nil {
			return nil, err
		}
		res, err := stmt.ExecContext(ctx, a...)
		if err != nil {
			return nil, err
		}
		if inserted, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if inserted == 0 {
			taken = append(taken, i)
		}
	}
	return taken, nil
}

// insertBatch inserts n rows with query, an INSERT ... ON CONFLICT DO NOTHING of one row,
// in one transaction, and returns the indexes of the rows whose key was already taken.
func (s *Store) insertBatch(ctx context.Context, query string, n int, args func(i int) ([]any, error)) (taken []int, err error) {
	if n == 0 {
		return nil, nil
	}
	err = s.inTx(ctx, func(tx writeTx) error {
		stmt, err := tx.prepare(ctx, query)
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		taken, err = insertEach(ctx, stmt, n, args)
		return err
	})
	return taken, err
}

// page is a list query of newest-first records: the conditions on the table's columns,
// ANDed, then ORDER BY id DESC and a limit. It asks for one row more than limit, to tell
// whether more remain.
type page struct {
	columns, table string
	where          []string
	args           []any
}

// and adds the condition cond on arg.
func (p *page) and(cond string, arg any) {
	p.where = append(p.where, cond)
	p.args = append(p.args, arg)
}

// list reads the page, up to limit records (10 if it is not positive) older than
// startingAfter when it is set, each scanned by scan, and reports whether more remain.
// The result is empty, not nil, when nothing matches.
func list[T any](ctx context.Context, s *Store, p page, limit int, startingAfter string, scan func(scanner) (T, error)) (out []T, hasMore bool, err error) {
	if limit <= 0 {
		limit = defaultListLimit
	}
	if startingAfter != "" {
		p.and("id < ?", startingAfter)
	}
	q := "SELECT " + p.columns + " FROM " + p.table + " WHERE "
	for i, w := range p.where {
		if i > 0 {
			q += " AND "
		}
		q += w
	}
	q += " ORDER BY id DESC LIMIT ?"
	rows, err := s.query(ctx, q, append(p.args, limit+1)...)
	if err != nil {
		return nil, false, err
	}
	out, err = scanAll(rows, scan)
	if err != nil {
		return nil, false, err
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// scanner is what one row is scanned from: *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanAll scans every row of rows with scan, and closes rows. The result is empty, not
// nil, when there are none.
func scanAll[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer func() { _ = rows.Close() }()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// each calls f with every row of query, scanned by scan, stopping at the first error.
func each[T any](ctx context.Context, s *Store, query string, scan func(scanner) (T, error), f func(T) error) error {
	rows, err := s.query(ctx, query)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return err
		}
		if err := f(v); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Times are stored as milliseconds since the Unix epoch and read back in UTC: the
// precision and zone of BSON dates, so that both engines give back the same values.

func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func millisPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	ms := millis(*t)
	return &ms
}

func fromMillisPtr(ms *int64) *time.Time {
	if ms == nil {
		return nil
	}
	t := fromMillis(*ms)
	return &t
}

// mapSlice returns f of each of xs; nil if xs is nil. With omitempty, a list that is
// empty is left out of a document and read back nil, as the mongodb engine does.
func mapSlice[A, B any](xs []A, f func(A) B) []B {
	if xs == nil {
		return nil
	}
	out := make([]B, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}
