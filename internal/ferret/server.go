// Package ferret runs an embedded FerretDB on SQLite: the MongoDB-compatible server that
// the mongodb engine of the store runs on in the devstack and in tests.
package ferret

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// readyTimeout bounds how long Start waits for the listener to accept connections.
const readyTimeout = 10 * time.Second

// newMu serialises ferretdb.New, which writes a package-level variable of FerretDB's
// (its version info) and would otherwise race when two servers start at once.
var newMu sync.Mutex

// Server is an embedded FerretDB serving the MongoDB wire protocol over TCP, with its data
// in SQLite files.
type Server struct {
	uri    string
	cancel context.CancelFunc
	done   chan struct{}
}

// Start starts FerretDB listening on the TCP address addr ("127.0.0.1:0" picks a free
// port) with its SQLite data under dir, which is created if missing. It returns once the
// listener accepts connections. The server runs until ctx is done or Close is called.
//
// FerretDB is noisy: only its warnings and errors reach logger, and nothing at all when
// logger is nil.
//
// The data are the owner's only: dir is made 0700 (also when it exists), and the database
// files 0600, those already there as well as those FerretDB creates (see sqliteURL).
func Start(ctx context.Context, dir, addr string, logger *slog.Logger) (*Server, error) {
	sqliteURL, err := prepareDir(dir)
	if err != nil {
		return nil, err
	}
	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
		Logger:    quiet(logger),
	})
	newMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("creating FerretDB: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	s := &Server{cancel: cancel, done: make(chan struct{})}
	indexed := make(chan struct{})
	go func() {
		defer close(indexed)
		indexIDs(ctx, dir, quiet(logger))
	}()
	go func() {
		defer close(s.done)
		_ = f.Run(ctx) // always nil: it returns when ctx is done
		<-indexed
	}()
	// New has already bound the listener, so MongoDBURI does not block.
	s.uri = f.MongoDBURI()

	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// modeFile is the file, in the data directory, whose mode SQLite gives the database files
// it creates (its "modeof" URI parameter): 0600. Its name does not end in .sqlite, so
// FerretDB does not take it for a database.
const modeFile = ".db-mode"

// dbFilePatterns are FerretDB's SQLite files: databases, write-ahead logs, shared memory
// and rollback journals.
var dbFilePatterns = []string{"*.sqlite", "*.sqlite-wal", "*.sqlite-shm", "*.sqlite-journal"}

// prepareDir creates dir (0700) or makes it 0700, makes the database files already in it
// 0600, and returns the SQLite URL FerretDB opens dir with.
//
// FerretDB creates a database's file when the database is first written to; SQLite would
// create it 0644 (less the umask), and its -wal and -shm files with the mode of the
// database file. The URL's modeof parameter, which FerretDB passes on to every database it
// opens, makes SQLite create the database file with the mode of modeFile instead: 0600
// from the start, no window in which it is readable by others, and its -wal and -shm
// files after it.
func prepareDir(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating FerretDB data directory: %w", err)
	}
	// MkdirAll leaves an existing directory as it is (and the umask applies to a new one).
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("FerretDB data directory: %w", err)
	}
	for _, pattern := range dbFilePatterns {
		files, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, f := range files {
			if err := os.Chmod(f, 0o600); err != nil {
				return "", fmt.Errorf("FerretDB data file: %w", err)
			}
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("FerretDB data directory: %w", err)
	}
	ref := filepath.Join(abs, modeFile)
	if err := os.WriteFile(ref, []byte("SQLite creates the database files of this directory with this file's mode.\n"), 0o600); err != nil {
		return "", fmt.Errorf("FerretDB data directory: %w", err)
	}
	if err := os.Chmod(ref, 0o600); err != nil { // it may have existed
		return "", fmt.Errorf("FerretDB data directory: %w", err)
	}
	return "file:" + dir + "/?" + url.Values{"modeof": {ref}}.Encode(), nil
}

// URI returns the MongoDB connection string of the server.
func (s *Server) URI() string { return s.uri }

// Close stops the server and waits until its listener and connections are closed. It may
// be called more than once.
func (s *Server) Close() {
	s.cancel()
	<-s.done
}

// waitReady dials the listener until it accepts a connection.
func (s *Server) waitReady(ctx context.Context) error {
	u, err := url.Parse(s.uri)
	if err != nil {
		return fmt.Errorf("parsing FerretDB URI %q: %w", s.uri, err)
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", u.Host)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-s.done:
			return errors.New("FerretDB stopped while starting")
		case <-ctx.Done():
			return fmt.Errorf("waiting for FerretDB on %s: %w", u.Host, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// quiet returns a logger that passes only warnings and errors to logger, or discards
// everything when logger is nil.
func quiet(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(minLevelHandler{min: slog.LevelError, next: logger.Handler()})
}

// minLevelHandler drops records below min before they reach next.
type minLevelHandler struct {
	min  slog.Level
	next slog.Handler
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.next.Enabled(ctx, l)
}

func (h minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.next.Handle(ctx, r)
}

func (h minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{min: h.min, next: h.next.WithAttrs(attrs)}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{min: h.min, next: h.next.WithGroup(name)}
}
