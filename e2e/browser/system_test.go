package browser_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/client"
	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/natstest"
	"github.com/billing/billing/internal/storetest"
	"github.com/billing/billing/internal/systemtest"
)

// system is an ingest (the API and the dashboard) and a worker, in this process, on
// embedded NATS and the test store, with a payment processor the test can hold back.
type system struct {
	t         *testing.T
	base      string
	key       *auth.DevKey
	cfg       config.Config
	processor *processor
}

// startSystem starts a system for one test; it stops when the test ends.
func startSystem(t *testing.T) *system {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	key, err := auth.LoadOrCreateDevKey(t.TempDir())
	require.NoError(t, err)
	proc := newProcessor(t)

	cfg := systemtest.Config(natstest.New(t), storetest.Config(t), key.JWKSPath())
	// The receivers are httptest servers on the loopback.
	cfg.WebhookAllowPrivate = true
	cfg.WebhookTimeout = 2 * time.Second
	// A held authorization must outlast a slow page load rather than time out and retry.
	cfg.Processor, cfg.ProcessorURL, cfg.ProcessorTimeout = "http", proc.URL, pageTimeout

	run, err := systemtest.Start(cfg, logger)
	require.NoError(t, err)
	t.Cleanup(func() {
		// A held authorization would hold the worker's drain until its timeout.
		proc.release()
		require.NoError(t, run.Stop())
	})
	return &system{t: t, base: "http://" + run.Addrs.API, key: key, cfg: cfg, processor: proc}
}

// token returns a token of merchant with every merchant scope (docs/api.md, "Authentication").
func (s *system) token(merchant string) string {
	s.t.Helper()
	return s.tokenWith(merchant, "charges:write", "charges:read", "events:read", "webhooks:manage")
}

// tokenWith returns a token of merchant with scopes.
func (s *system) tokenWith(merchant string, scopes ...string) string {
	s.t.Helper()
	tok, err := s.key.Sign(s.cfg.AuthIssuer, s.cfg.AuthAudience, merchant, scopes, time.Hour, time.Now())
	require.NoError(s.t, err)
	return tok
}

// client returns an API client of merchant.
func (s *system) client(merchant string) *client.Client {
	s.t.Helper()
	c, err := client.New(s.base, s.token(merchant), nil)
	require.NoError(s.t, err)
	return c
}

// processor is the payment processor the worker calls over HTTP (docs/api.md, "Payment
// processor boundary"). It declines the simulated processor's declined cards and approves
// the rest; while held, it answers no authorization until release.
type processor struct {
	*httptest.Server
	mu   sync.Mutex
	gate chan struct{} // closed, or nil, when authorizations pass
}

func newProcessor(t *testing.T) *processor {
	p := &processor{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/authorizations" {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			if gate != nil {
				select {
				case <-gate:
				case <-r.Context().Done():
					return
				}
			}
		}
		var req struct {
			PaymentMethod string `json:"payment_method"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		answer := map[string]string{"id": "proc_" + strings.TrimPrefix(r.URL.Path, "/") + "_" + r.Header.Get("Idempotency-Key"), "status": "approved"}
		if code, ok := declines[req.PaymentMethod]; ok {
			answer["status"], answer["decline_code"] = "declined", code
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(p.Close)
	return p
}

// declines are the payment methods the processor declines, with its decline code.
var declines = map[string]string{
	"pm_card_chargeDeclined":    "card_declined",
	"pm_card_insufficientFunds": "insufficient_funds",
}

// hold makes authorizations wait for release.
func (p *processor) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

// release lets the held authorizations, and every later one, through.
func (p *processor) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// receiver is a webhook endpoint's server: it records each delivery's event id and
// answers 200.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &ev)
		r.mu.Lock()
		r.events = append(r.events, ev.ID)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// deliveries returns how many deliveries of event id the receiver got.
func (r *receiver) deliveries(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e == id {
			n++
		}
	}
	return n
}
