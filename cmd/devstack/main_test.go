package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/config"
)

var testInfra = infraEnv{
	JWKSFile: "/dev/null/jwks.json", WebhookSecretKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	NATSURL: "nats://127.0.0.1:1", Store: []string{"BILLING_STORE=mongodb", "BILLING_MONGO_URI=mongodb://127.0.0.1:2"},
}

// servicesConfig returns the configurations `devstack up` gives the ingest and the worker
// when the user's environment is environ (and the config file path, if any).
func servicesConfig(t *testing.T, path string, environ ...string) (setup upSetup, ingest, worker config.Config, err error) {
	t.Helper()
	dev, err := config.Load(config.Devstack, path, environ)
	require.NoError(t, err)
	setup, err = planUp(environ, dev)
	if err != nil {
		return setup, ingest, worker, err
	}
	ingestEnv, workerEnv := setup.environ(environ, testInfra)
	ingest, err = config.Load(config.Ingest, path, ingestEnv)
	require.NoError(t, err)
	worker, err = config.Load(config.Worker, path, workerEnv)
	require.NoError(t, err)
	return setup, ingest, worker, nil
}

// `devstack up` gives each service its own admin address, on loopback unless the user
// sets one: BILLING_ADMIN_ADDR is the ingest's, BILLING_DEV_WORKER_ADMIN_ADDR the worker's.
func TestUpAdminAddrs(t *testing.T) {
	t.Parallel()
	setup, ingest, worker, err := servicesConfig(t, "")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9090", ingest.AdminAddr)
	require.Equal(t, "127.0.0.1:9091", worker.AdminAddr)
	require.Empty(t, setup.notes)

	setup, ingest, worker, err = servicesConfig(t, "", "BILLING_ADMIN_ADDR=:7000")
	require.NoError(t, err)
	require.Equal(t, ":7000", ingest.AdminAddr)
	require.Equal(t, "127.0.0.1:9091", worker.AdminAddr, "not the ingest's: it could not bind it")
	require.Len(t, setup.notes, 1)
	require.Contains(t, setup.notes[0], "BILLING_ADMIN_ADDR (:7000) is the ingest's admin address only")
	require.Contains(t, setup.notes[0], "BILLING_DEV_WORKER_ADMIN_ADDR")

	_, ingest, worker, err = servicesConfig(t, "", "BILLING_ADMIN_ADDR=:7000", "BILLING_DEV_WORKER_ADMIN_ADDR=127.0.0.1:7001")
	require.NoError(t, err)
	require.Equal(t, ":7000", ingest.AdminAddr)
	require.Equal(t, "127.0.0.1:7001", worker.AdminAddr)

	// admin_addr in the config file is the ingest's too.
	path := filepath.Join(t.TempDir(), "billing.yaml")
	require.NoError(t, os.WriteFile(path, []byte("admin_addr: 127.0.0.1:7002\n"), 0o600))
	_, ingest, worker, err = servicesConfig(t, path)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:7002", ingest.AdminAddr)
	require.Equal(t, "127.0.0.1:9091", worker.AdminAddr)

	for _, env := range [][]string{
		{"BILLING_ADMIN_ADDR=:9091"},
		{"BILLING_ADMIN_ADDR=127.0.0.1:7000", "BILLING_DEV_WORKER_ADMIN_ADDR=:7000"},
	} {
		_, _, _, err = servicesConfig(t, "", env...)
		require.ErrorContains(t, err, "BILLING_DEV_WORKER_ADMIN_ADDR", env)
	}
	_, _, _, err = servicesConfig(t, "", "BILLING_DEV_WORKER_ADMIN_ADDR=9091")
	require.ErrorContains(t, err, "BILLING_DEV_WORKER_ADMIN_ADDR: must be host:port")
	_, _, _, err = servicesConfig(t, "", "BILLING_ADMIN_ADDR=127.0.0.1:0", "BILLING_DEV_WORKER_ADMIN_ADDR=127.0.0.1:0")
	require.NoError(t, err, "port 0: each gets a free port")
}

// `devstack up` allows private webhook URLs unless the user says false, and says which.
func TestUpWebhookAllowPrivate(t *testing.T) {
	t.Parallel()
	_, ingest, worker, err := servicesConfig(t, "")
	require.NoError(t, err)
	require.True(t, ingest.WebhookAllowPrivate)
	require.True(t, worker.WebhookAllowPrivate)
	require.Contains(t, webhookNote(true), "allowed (development); set BILLING_WEBHOOK_ALLOW_PRIVATE=false to refuse them")

	_, ingest, worker, err = servicesConfig(t, "", "BILLING_WEBHOOK_ALLOW_PRIVATE=false")
	require.NoError(t, err)
	require.False(t, ingest.WebhookAllowPrivate)
	require.False(t, worker.WebhookAllowPrivate)
	require.Contains(t, webhookNote(false), "refused (BILLING_WEBHOOK_ALLOW_PRIVATE=false)")

	b := banner("http://localhost:8080", "tok", "code", "127.0.0.1:9090", "127.0.0.1:9091", []string{webhookNote(true)})
	require.Contains(t, b, "API:    http://localhost:8080")
	require.Contains(t, b, "token:  tok")
	require.Contains(t, b, "dashboard: http://localhost:8080/dashboard/sign-in/code\n")
	require.Contains(t, b, "http://127.0.0.1:9090 (ingest), http://127.0.0.1:9091 (worker)")
	require.Contains(t, b, webhookNote(true))
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// `devstack up` with BILLING_ADMIN_ADDR set runs both services (the worker once took the
// same address and could not bind it), each answering on its own admin address, and says
// so and what it does of private webhook URLs at start.
func TestUp(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	if testing.Short() {
		t.Skip("starts the whole system")
	}
	t.Parallel()
	ingestAdmin, workerAdmin := freeAddr(t), freeAddr(t)
	up := startUp(t, dataDir,
		"BILLING_ADMIN_ADDR="+ingestAdmin,
		"BILLING_DEV_WORKER_ADMIN_ADDR="+workerAdmin,
		"BILLING_WEBHOOK_ALLOW_PRIVATE=false")
	banner := up.banner
	require.Contains(t, banner, "http://"+ingestAdmin+" (ingest), http://"+workerAdmin+" (worker)")
	require.Contains(t, banner, "BILLING_ADMIN_ADDR ("+ingestAdmin+") is the ingest's admin address only")
	require.Contains(t, banner, "webhook URLs on private and loopback addresses are refused (BILLING_WEBHOOK_ALLOW_PRIVATE=false)")
	require.Contains(t, banner, "store: sqlite, the database file "+filepath.Join(dataDir, "store", "billing.db"))

	client := &http.Client{Timeout: 5 * time.Second}
	// The dashboard's sign-in link signs in once: a session cookie and on to the
	// dashboard; then it is spent.
	link := regexp.MustCompile(`dashboard: (\S+/dashboard/sign-in/\S+)`).FindStringSubmatch(banner)
	require.NotNil(t, link, banner)
	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(link[1])
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.NotEmpty(t, resp.Cookies(), "a session")
	require.True(t, resp.Cookies()[0].HttpOnly)
	resp, err = noRedirect.Get(link[1])
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "spent")
	require.Empty(t, resp.Cookies())

	for _, addr := range []string{ingestAdmin, workerAdmin} {
		resp, err := client.Get("http://" + addr + "/livez")
		require.NoError(t, err, addr)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, addr)
	}
}

// upStack is a `devstack up` running in this process for a test.
type upStack struct {
	// environ is its environment; banner what it printed once ready.
	environ []string
	banner  string
}

// startUp runs `devstack up` on free ports with its data under dataDir, env adding to or
// overriding its environment, until it prints its banner; the test's cleanup stops it
// and requires a clean exit.
func startUp(t *testing.T, dataDir string, env ...string) upStack {
	t.Helper()
	environ := append([]string{
		"BILLING_DATA_DIR=" + dataDir,
		"BILLING_DEV_NATS_ADDR=127.0.0.1:-1",
		"BILLING_DEV_MONGO_ADDR=127.0.0.1:0",
		"BILLING_HTTP_ADDR=127.0.0.1:0",
		"BILLING_ADMIN_ADDR=127.0.0.1:0",
		"BILLING_DEV_WORKER_ADMIN_ADDR=127.0.0.1:0",
		"BILLING_LOG_LEVEL=error",
		"BILLING_SHUTDOWN_TIMEOUT=5s",
	}, env...)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- runUp(ctx, nil, environ, &out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(60 * time.Second):
			t.Error("devstack up did not stop")
		}
	})
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "export TOKEN=") {
		select {
		case err := <-done:
			t.Fatalf("devstack up ended: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("devstack up did not print its banner:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return upStack{environ: environ, banner: out.String()}
}
