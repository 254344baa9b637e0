package devstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/billing/billing/webhooksig"
)

const testToken = "test-token"

// fakeAPI stands in for the billing API's webhook endpoint routes.
type fakeAPI struct {
	*httptest.Server
	secret    string
	forbidden bool // answer registrations with 400 url_forbidden

	mu         sync.Mutex
	registered map[string]any
	regHeader  http.Header
	deleted    []string
	delHeader  http.Header

	registeredURL chan string
	deletedCh     chan struct{}
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{
		secret:        newFakeSecret(),
		registeredURL: make(chan string, 1),
		deletedCh:     make(chan struct{}, 1),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/webhook_endpoints", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if f.forbidden {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"type":"about:blank","title":"Bad Request","status":400,"code":"url_forbidden","param":"url","detail":"url resolves to a loopback address"}`)
			return
		}
		f.mu.Lock()
		f.registered, f.regHeader = body, r.Header.Clone()
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{
			"id": "we_test1", "object": "webhook_endpoint", "url": body["url"],
			"enabled_events": body["enabled_events"], "status": "enabled", "secret": f.secret,
			"created_at": time.Now().UTC().Format(time.RFC3339),
		})
		f.registeredURL <- body["url"].(string)
	})
	mux.HandleFunc("DELETE /v1/webhook_endpoints/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.deleted, f.delHeader = append(f.deleted, r.PathValue("id")), r.Header.Clone()
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"`+r.PathValue("id")+`","object":"webhook_endpoint","deleted":true}`)
		f.deletedCh <- struct{}{}
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// forwarded is one request the forward target received.
type forwarded struct {
	header http.Header
	body   []byte
}

// target stands in for the merchant's local webhook handler.
type target struct {
	*httptest.Server
	status   atomic.Int32
	received chan forwarded
}

func newTarget(t *testing.T) *target {
	t.Helper()
	tg := &target{received: make(chan forwarded, 10)}
	tg.status.Store(http.StatusOK)
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tg.received <- forwarded{header: r.Header.Clone(), body: body}
		status := int(tg.status.Load())
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "120")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(tg.Close)
	return tg
}

// syncBuffer is an io.Writer safe for Run's goroutines and the test's reads.
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

// deliver posts body to url the way the billing API does, signed with secret.
func deliver(t *testing.T, url, secret, id string, body []byte) *http.Response {
	t.Helper()
	key, err := webhooksig.DecodeSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhooksig.HeaderID, id)
	req.Header.Set(webhooksig.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(webhooksig.HeaderSignature, webhooksig.Sign(key, id, ts, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func eventBody(id, typ string) []byte {
	return []byte(`{"id":"` + id + `","object":"event","type":"` + typ + `","created_at":"2026-01-02T03:04:05Z","sequence":1,"data":{"object":{"id":"ch_1","object":"charge","status":"succeeded"}}}`)
}

func TestListenerForwardsDeliveries(t *testing.T) {
	api := newFakeAPI(t)
	tg := newTarget(t)
	out := &syncBuffer{}
	l := &Listener{
		APIURL:     api.URL + "/",
		Token:      testToken,
		ForwardTo:  tg.URL + "/hooks",
		Events:     []string{"charge.succeeded", "charge.failed"},
		HTTPClient: &http.Client{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, out) }()

	url := waitFor(t, api.registeredURL, "the endpoint registration")
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/") {
		t.Errorf("registered url = %q, want http://127.0.0.1:<port>/", url)
	}
	api.mu.Lock()
	reg, regHeader := api.registered, api.regHeader
	api.mu.Unlock()
	if got := regHeader.Get("Authorization"); got != "Bearer "+testToken {
		t.Errorf("Authorization = %q", got)
	}
	if got := regHeader.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if regHeader.Get("Idempotency-Key") == "" {
		t.Error("no Idempotency-Key on the registration")
	}
	if got, _ := json.Marshal(reg["enabled_events"]); string(got) != `["charge.succeeded","charge.failed"]` {
		t.Errorf("enabled_events = %s", got)
	}
	if reg["description"] != "devstack listen (temporary)" {
		t.Errorf("description = %v", reg["description"])
	}

	// A correctly signed delivery is forwarded unchanged and answered with the target's status.
	body := eventBody("evt_abc123", "charge.succeeded")
	resp := deliver(t, url, api.secret, "evt_abc123", body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("delivery answered %d, want 200", resp.StatusCode)
	}
	got := waitFor(t, tg.received, "the forwarded delivery")
	if !bytes.Equal(got.body, body) {
		t.Errorf("forwarded body = %s, want %s", got.body, body)
	}
	for _, h := range []string{webhooksig.HeaderID, webhooksig.HeaderTimestamp, webhooksig.HeaderSignature, "Content-Type"} {
		if got.header.Get(h) == "" {
			t.Errorf("forwarded delivery lacks %s", h)
		}
	}
	if got.header.Get(webhooksig.HeaderID) != "evt_abc123" || got.header.Get("Content-Type") != "application/json" {
		t.Errorf("forwarded headers = %v", got.header)
	}
	// The forwarded delivery verifies with the printed secret, as the merchant's handler would.
	v, _ := webhooksig.NewVerifier(api.secret)
	if err := v.Verify(got.header, got.body); err != nil {
		t.Errorf("forwarded delivery does not verify: %v", err)
	}
	printed := out.String()
	if !strings.Contains(printed, "Ready! Forwarding events to "+tg.URL+"/hooks (endpoint we_test1, secret "+api.secret+")") {
		t.Errorf("no Ready line in output:\n%s", printed)
	}
	if !lineWith(printed, "charge.succeeded", "evt_abc123", "→ 200") {
		t.Errorf("no line for the delivery in output:\n%s", printed)
	}

	// A badly signed delivery is rejected with 400 and not forwarded.
	wrong := newFakeSecret()
	resp = deliver(t, url, wrong, "evt_bad", eventBody("evt_bad", "charge.failed"))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("badly signed delivery answered %d, want 400", resp.StatusCode)
	}
	// A tampered body with a signature of the original is rejected too.
	key, _ := webhooksig.DecodeSecret(api.secret)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"id":"evt_x","type":"charge.succeeded","amount":1}`))
	ts := time.Now()
	req.Header.Set(webhooksig.HeaderID, "evt_x")
	req.Header.Set(webhooksig.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(webhooksig.HeaderSignature, webhooksig.Sign(key, "evt_x", ts, []byte(`{"id":"evt_x"}`)))
	if r2, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		r2.Body.Close()
		if r2.StatusCode != http.StatusBadRequest {
			t.Errorf("tampered delivery answered %d, want 400", r2.StatusCode)
		}
	}
	select {
	case f := <-tg.received:
		t.Errorf("a badly signed delivery was forwarded: %s", f.body)
	default:
	}
	if !strings.Contains(out.String(), "warning: rejected a delivery") {
		t.Errorf("no warning for the badly signed delivery:\n%s", out.String())
	}

	// The target's status is passed back, with its Retry-After.
	tg.status.Store(http.StatusServiceUnavailable)
	resp = deliver(t, url, api.secret, "evt_def456", eventBody("evt_def456", "charge.failed"))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("delivery answered %d, want the target's 503", resp.StatusCode)
	}
	if resp.Header.Get("Retry-After") != "120" {
		t.Errorf("Retry-After = %q, want the target's 120", resp.Header.Get("Retry-After"))
	}
	waitFor(t, tg.received, "the second forwarded delivery")
	if !lineWith(out.String(), "charge.failed", "evt_def456", "→ 503") {
		t.Errorf("no line for the 503 delivery in output:\n%s", out.String())
	}

	// Cancelling the context deletes the endpoint and ends Run without an error.
	api.mu.Lock()
	if len(api.deleted) != 0 {
		t.Errorf("endpoint deleted before the end: %v", api.deleted)
	}
	api.mu.Unlock()
	cancel()
	if err := waitFor(t, done, "Run to return"); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	api.mu.Lock()
	deleted, delHeader := api.deleted, api.delHeader
	api.mu.Unlock()
	if len(deleted) != 1 || deleted[0] != "we_test1" {
		t.Errorf("deleted = %v, want [we_test1]", deleted)
	}
	if delHeader.Get("Authorization") != "Bearer "+testToken {
		t.Errorf("DELETE Authorization = %q", delHeader.Get("Authorization"))
	}
	// The listener is stopped.
	if _, err := http.Post(url, "application/json", strings.NewReader("{}")); err == nil {
		t.Error("the listener still answers after Run returned")
	}
}

func TestListenerForwardFailureIs502(t *testing.T) {
	api := newFakeAPI(t)
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	out := &syncBuffer{}
	l := &Listener{APIURL: api.URL, Token: testToken, ForwardTo: goneURL}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, out) }()

	url := waitFor(t, api.registeredURL, "the endpoint registration")
	api.mu.Lock()
	events, _ := json.Marshal(api.registered["enabled_events"])
	api.mu.Unlock()
	if string(events) != `["*"]` {
		t.Errorf("default enabled_events = %s, want [\"*\"]", events)
	}
	resp := deliver(t, url, api.secret, "evt_1", eventBody("evt_1", "charge.captured"))
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("delivery answered %d, want 502", resp.StatusCode)
	}
	if !lineWith(out.String(), "charge.captured", "evt_1", "→ failed") {
		t.Errorf("no failure line in output:\n%s", out.String())
	}
	cancel()
	if err := waitFor(t, done, "Run to return"); err != nil {
		t.Errorf("Run = %v", err)
	}
	waitFor(t, api.deletedCh, "the DELETE")
}

func TestListenerURLForbiddenHint(t *testing.T) {
	api := newFakeAPI(t)
	api.forbidden = true
	l := &Listener{APIURL: api.URL, Token: testToken, ForwardTo: "http://localhost:3000/hooks"}
	err := l.Run(context.Background(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "BILLING_WEBHOOK_ALLOW_PRIVATE=true") {
		t.Errorf("Run = %v, want a hint about BILLING_WEBHOOK_ALLOW_PRIVATE=true", err)
	}
}

func TestListenerRejectsBadForwardURL(t *testing.T) {
	for _, u := range []string{"", "ftp://localhost/hooks", "localhost:3000", "http://"} {
		l := &Listener{APIURL: "http://127.0.0.1:1", ForwardTo: u}
		if err := l.Run(context.Background(), io.Discard); err == nil || !strings.Contains(err.Error(), "forward-to") {
			t.Errorf("Run with --forward-to %q = %v, want an error about forward-to", u, err)
		}
	}
}

func newFakeSecret() string {
	raw := make([]byte, 32)
	rand.Read(raw)
	return webhooksig.SecretPrefix + base64.StdEncoding.EncodeToString(raw)
}

// lineWith reports whether one line of s contains every part, in order.
func lineWith(s string, parts ...string) bool {
	for _, line := range strings.Split(s, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}
