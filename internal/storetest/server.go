// Package storetest starts real MongoDB-compatible servers for tests and for the devstack:
// an embedded FerretDB on SQLite. Nothing here fakes the store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
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
func Start(ctx context.Context, dir, addr string, logger *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating FerretDB data directory: %w", err)
	}
	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
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
