package service_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/natstest"
	"github.com/billing/billing/internal/openapitest"
	"github.com/billing/billing/internal/service"
	"github.com/billing/billing/internal/store"
	"github.com/billing/billing/internal/storetest"
	"github.com/billing/billing/internal/systemtest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }

// system is a running ingest API and worker on real embedded NATS and FerretDB.
type system struct {
	t      *testing.T
	base   string
	admin  string
	key    *auth.DevKey
	cfg    config.Config
	store  store.Store
	client *http.Client
	// stop shuts the ingest and the worker down and returns what they returned; the
	// test's cleanup calls it too, and requires no error.
	stop func() error
}

// startSystem starts NATS, an ingest and a worker for one test; edit adjusts the
// configuration first.
func startSystem(t *testing.T, edit func(*config.Config)) *system {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return startSystemLogging(t, edit, logger)
}

// syncBuffer is a bytes.Buffer that the goroutines of a system may write at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startSystemWithLogs is startSystem with the ingest's and the worker's logs captured, from
// level Debug up, as slog text lines.
func startSystemWithLogs(t *testing.T, edit func(*config.Config)) (*system, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return startSystemLogging(t, edit, logger), logs
}

func startSystemLogging(t *testing.T, edit func(*config.Config), logger *slog.Logger, opts ...service.Option) *system {
	t.Helper()
	key, err := auth.LoadOrCreateDevKey(t.TempDir())
	require.NoError(t, err)
	cfg := systemtest.Config(natstest.New(t), storetest.Config(t), key.JWKSPath())
	if edit != nil {
		edit(&cfg)
	}

	run, err := systemtest.Start(cfg, logger, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, run.Stop()) })
	addrs := run.Addrs
	st := storetest.Open(t, service.StoreConfig(cfg))
	return &system{t: t, base: "http://" + addrs.API, admin: "http://" + addrs.Admin, key: key, cfg: cfg, store: st,
		client: &http.Client{Timeout: 90 * time.Second, Transport: &openapitest.Transport{Report: t}}, stop: run.Stop}
}

var allScopes = []string{"charges:write", "charges:read", "events:read", "webhooks:manage"}

// token returns a valid token for merchant with scopes (all scopes when none are given).
func (s *system) token(merchant string, scopes ...string) string {
	s.t.Helper()
	if len(scopes) == 0 {
		scopes = allScopes
	}
	tok, err := s.key.Sign(s.cfg.AuthIssuer, s.cfg.AuthAudience, merchant, scopes, time.Hour, time.Now())
	require.NoError(s.t, err)
	return tok
}

// response is an answer with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// do sends a request; headers are name/value pairs.
func (s *system) do(method, path, token, body string, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	require.NoError(s.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// create posts a charge with a fresh idempotency key and requires a 202.
func (s *system) create(token, body string) map[string]any {
	s.t.Helper()
	r := s.do("POST", "/v1/charges", token, body, "Idempotency-Key", newKey())
	require.Equal(s.t, http.StatusAccepted, r.status, "body: %s", r.body)
	return r.json(s.t)
}

// settle waits until the charge is no longer pending and returns it.
func (s *system) settle(token, id string) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.do("GET", "/v1/charges/"+id+"?wait=5s", token, "")
		require.Equal(s.t, http.StatusOK, r.status, "body: %s", r.body)
		c := r.json(s.t)
		if c["status"] != "pending" {
			return c
		}
		require.True(s.t, time.Now().Before(deadline), "charge %s still pending", id)
	}
}

func chargeBody(amount int, pm string, extra ...string) string {
	var b bytes.Buffer
	b.WriteString(`{"amount": `)
	b.WriteString(jsonInt(amount))
	b.WriteString(`, "currency": "usd", "payment_method": "` + pm + `"`)
	for _, e := range extra {
		b.WriteString(", " + e)
	}
	b.WriteString("}")
	return b.String()
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

func newKey() string { return "key_" + rand.Text() }
