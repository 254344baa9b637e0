package service

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/config"
)

// serve runs serveUntil on a local listener with handler and grace; stop ends it and
// returns its error.
func serve(t *testing.T, handler http.Handler, grace time.Duration) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveUntil(ctx, &http.Server{Handler: handler, ReadHeaderTimeout: time.Minute}, ln, nil, grace)
	}()
	return ln.Addr().String(), func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(grace + 10*time.Second):
			t.Fatal("serveUntil did not return")
			return nil
		}
	}
}

// A client that opened a connection and never sent a request on it (Go's transport dials
// ahead when many requests start together) neither holds the shutdown for its grace nor
// makes it fail; a request that was served before is not affected either.
func TestShutdownClosesUnusedConnections(t *testing.T) {
	t.Parallel()
	addr, stop := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), 3*time.Second)
	resp, err := http.Get("http://" + addr + "/")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	unused, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer unused.Close()
	// A request on a new connection dialed after it: the server accepts connections in
	// order, so once that one is answered the unused one is accepted (StateNew) too.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err = fresh.Get("http://" + addr + "/")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())

	start := time.Now()
	require.NoError(t, stop())
	require.Less(t, time.Since(start), 2*time.Second, "shutdown waited for a connection that never sent a request")
	require.NoError(t, unused.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = unused.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the unused connection was closed by the server")
}

// A request still running when the grace ends is cut off, and the shutdown says so.
func TestShutdownReportsRequestsCutOff(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	addr, stop := serve(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(started)
		<-release
	}), 200*time.Millisecond)
	go func() {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-started
	err := stop()
	require.ErrorContains(t, err, "1 requests cut off")
}

// A service told to stop while it is still connecting stops cleanly: no error, so a
// process stopped during its start exits 0 and a test that ends early does not fail on it.
// A start that fails on its own still reports why.
func TestStopWhileStarting(t *testing.T) {
	t.Parallel()
	cfg := config.Defaults(config.Worker)
	cfg.NATSURL = "nats://127.0.0.1:1" // nothing listens: the worker keeps retrying
	cfg.AdminAddr = "127.0.0.1:0"
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunWorker(ctx, cfg, logger) }()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop")
	}

	cfg.AdminAddr = "256.0.0.1:0"
	require.ErrorContains(t, RunWorker(context.Background(), cfg, logger), "admin address")
}
