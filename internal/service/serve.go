package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// serveUntil serves srv on ln (with TLS when tlsCfg is set) until ctx ends, then shuts it
// down gracefully within grace: requests in flight may finish, idle connections close.
//
// Connections on which no request has begun are closed at once. http.Server.Shutdown
// waits for those up to 5 s, as if a request might still come; but a client that dials
// ahead (Go's transport does, when many requests start together) may never send one on
// a connection, and a grace of 5 s or less then ends in an error although nothing was
// lost. Only requests cut off by the end of grace make it an error.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, tlsCfg *tls.Config, grace time.Duration) error {
	conns := trackConns(srv)
	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			srv.TLSConfig = tlsCfg
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- srv.Shutdown(sctx) }()
	// Shutdown has stopped new connections from being served once it closed the listener;
	// closing fresh ones before that is harmless too, they had sent nothing.
	conns.closeFresh()
	err := <-shutdown
	if errors.Is(err, context.DeadlineExceeded) {
		active := conns.active()
		_ = srv.Close()
		if active == 0 {
			return nil
		}
		return fmt.Errorf("shutting down %s: %d requests cut off after %s", ln.Addr(), active, grace)
	}
	if err != nil {
		return fmt.Errorf("shutting down %s: %w", ln.Addr(), err)
	}
	return nil
}

// connTracker follows a server's connections through http.Server.ConnState.
type connTracker struct {
	mu     sync.Mutex
	fresh  map[net.Conn]struct{} // no request begun yet
	busy   map[net.Conn]struct{} // a request in flight
	closed bool                  // closeFresh has run: new connections close at once
}

// trackConns installs a tracker as srv.ConnState, keeping any hook already there.
func trackConns(srv *http.Server) *connTracker {
	t := &connTracker{fresh: map[net.Conn]struct{}{}, busy: map[net.Conn]struct{}{}}
	next := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		t.set(c, s)
		if next != nil {
			next(c, s)
		}
	}
	return t
}

func (t *connTracker) set(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fresh, c)
	delete(t.busy, c)
	switch s {
	case http.StateNew:
		if t.closed {
			_ = c.Close()
			return
		}
		t.fresh[c] = struct{}{}
	case http.StateActive:
		t.busy[c] = struct{}{}
	}
}

// closeFresh closes the connections on which no request has begun, and any accepted from
// now on.
func (t *connTracker) closeFresh() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for c := range t.fresh {
		_ = c.Close()
		delete(t.fresh, c)
	}
}

// active returns how many connections have a request in flight.
func (t *connTracker) active() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.busy)
}
