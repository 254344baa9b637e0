package client_test

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/client"
	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/natstest"
	"github.com/billing/billing/internal/openapitest"
	"github.com/billing/billing/internal/store"
	"github.com/billing/billing/internal/systemtest"
)

// The system every test and example of the package talks to: a real ingest API and worker
// on an embedded NATS server and a SQLite store, started once per test binary (tests keep
// apart by each being a merchant of its own).
var (
	// baseURL is the API's; token a token of the examples' merchant with every scope.
	baseURL string
	token   string
	devKey  *auth.DevKey
	sysCfg  config.Config
)

func TestMain(m *testing.M) {
	code, err := runSystem(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// runSystem starts the system, runs the tests and stops it.
func runSystem(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "client-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	ns, err := natstest.StartServer(natstest.ServerOptions{Port: -1, StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		return 0, err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if devKey, err = auth.LoadOrCreateDevKey(filepath.Join(dir, "keys")); err != nil {
		return 0, err
	}
	cfg := systemtest.Config(ns.ClientURL(), store.Config{Engine: store.EngineSQLite, SQLitePath: filepath.Join(dir, "store", "billing.db")}, devKey.JWKSPath())
	cfg.WebhookAllowPrivate = true // the tests' receivers listen on loopback
	cfg.WebhookRetrySchedule = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}
	sysCfg = cfg

	run, err := systemtest.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return 0, err
	}
	defer run.Stop()
	baseURL = "http://" + run.Addrs.API
	if token, err = signToken("merchant_examples", allScopes...); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

var allScopes = []string{"charges:write", "charges:read", "events:read", "webhooks:manage"}

func signToken(merchant string, scopes ...string) (string, error) {
	return devKey.Sign(sysCfg.AuthIssuer, sysCfg.AuthAudience, merchant, scopes, time.Hour, time.Now())
}

// setup is what a test needs: a merchant of its own and a client of it.
type setup struct {
	merchant string
	token    string
	client   *client.Client
}

// newSetup returns a fresh merchant with every scope and a client of it with cfg (nil:
// the defaults) on the API at base (empty: the system's).
func newSetup(t *testing.T, base string, cfg *client.Config) *setup {
	t.Helper()
	merchant := "m_" + rand.Text()
	tok, err := signToken(merchant, allScopes...)
	require.NoError(t, err)
	if cfg == nil {
		// Every exchange with the real API is checked against api/openapi.yaml.
		cfg = &client.Config{HTTPClient: &http.Client{Transport: &openapitest.Transport{Report: t}}}
	}
	c, err := client.New(cmp.Or(base, baseURL), tok, cfg)
	require.NoError(t, err)
	return &setup{merchant: merchant, token: tok, client: c}
}

// attempt is one request that reached a front.
type attempt struct {
	method, path, key string
	body              []byte
}

// front is an HTTP proxy in front of the real API that records every request and lets a
// test answer some of them itself (fault injection).
type front struct {
	*httptest.Server
	mu       sync.Mutex
	attempts []attempt
	// intercept, if set, answers the n-th request (from 1) itself when it returns true.
	intercept func(n int, w http.ResponseWriter, r *http.Request) bool
}

func newFront(t *testing.T, intercept func(n int, w http.ResponseWriter, r *http.Request) bool) *front {
	t.Helper()
	target, err := url.Parse(baseURL)
	require.NoError(t, err)
	f := &front{intercept: intercept}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.attempts = append(f.attempts, attempt{method: r.Method, path: r.URL.Path, key: r.Header.Get("Idempotency-Key"), body: body})
		n := len(f.attempts)
		f.mu.Unlock()
		if f.intercept != nil && f.intercept(n, w, r) {
			return
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, target.String()+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		res, err := http.DefaultClient.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		_, _ = io.Copy(w, res.Body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *front) seen() []attempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]attempt(nil), f.attempts...)
}
