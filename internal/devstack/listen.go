package devstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/billing/billing/webhooksig"
)

// ForwardTimeout bounds one forward of a delivery to the local target.
const ForwardTimeout = 10 * time.Second

// apiTimeout bounds one call to the billing API (registering or deleting the endpoint).
const apiTimeout = 15 * time.Second

// maxDeliveryBody bounds the body of a delivery the listener accepts.
const maxDeliveryBody = 1 << 20

// Listener forwards the webhook deliveries of a temporary endpoint to a local URL, like a
// payment provider's CLI: Run registers an endpoint pointing at a loopback listener,
// verifies each delivery's signature, forwards it to ForwardTo and answers the delivery
// with the target's status code, so retries behave as against the real endpoint. When the
// context ends, Run deletes the endpoint.
type Listener struct {
	// APIURL is the base URL of the billing API, such as http://localhost:8080.
	APIURL string
	// Token is a bearer token with the webhooks:manage scope.
	Token string
	// ForwardTo is the http(s) URL deliveries are forwarded to.
	ForwardTo string
	// Events are the enabled_events of the endpoint; empty means ["*"].
	Events []string
	// HTTPClient calls the API and the forward target; nil means http.DefaultClient.
	// Forwards never follow redirects (a redirect is a failed delivery) and time out
	// after ForwardTimeout.
	HTTPClient *http.Client
	// Addr is where the listener listens; empty means 127.0.0.1:0.
	Addr string
}

// registeredEndpoint is the part of the API's answer to POST /v1/webhook_endpoints we use.
type registeredEndpoint struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// problem is the part of an RFC 9457 error answer we show.
type problem struct {
	Title  string `json:"title"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// Run registers the endpoint, prints "Ready! …" to out, forwards deliveries (one line per
// delivery on out) until ctx ends, then deletes the endpoint and stops the listener. It
// returns nil after a clean shutdown, even if deleting the endpoint failed (a warning on
// out says so).
func (l *Listener) Run(ctx context.Context, out io.Writer) error {
	if err := checkHTTPURL("forward-to", l.ForwardTo); err != nil {
		return err
	}
	if err := checkHTTPURL("api", l.APIURL); err != nil {
		return err
	}
	events := l.Events
	if len(events) == 0 {
		events = []string{"*"}
	}
	client := l.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	api := strings.TrimRight(l.APIURL, "/")
	addr := l.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	defer ln.Close()
	localURL := "http://" + ln.Addr().String() + "/"

	ep, err := l.register(ctx, client, api, localURL, events)
	if err != nil {
		return err
	}
	verifier, err := webhooksig.NewVerifier(ep.Secret)
	if err != nil {
		l.deleteEndpoint(client, api, ep.ID, out)
		return fmt.Errorf("the API returned an unusable secret for %s: %w", ep.ID, err)
	}

	w := &lockedWriter{w: out}
	fwd := *client
	fwd.Timeout = ForwardTimeout
	fwd.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	h := &forwarder{verifier: verifier, target: l.ForwardTo, client: &fwd, out: w}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	w.printf("Ready! Forwarding events to %s (endpoint %s, secret %s)\n", l.ForwardTo, ep.ID, ep.Secret)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	l.deleteEndpoint(client, api, ep.ID, w)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ForwardTimeout+2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serving deliveries: %w", serveErr)
	}
	return nil
}

// checkHTTPURL checks that raw is an absolute http or https URL.
func checkHTTPURL(name, raw string) error {
	if raw == "" {
		return fmt.Errorf("--%s is required", name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("--%s: %w", name, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--%s: %q is not an http(s) URL", name, raw)
	}
	return nil
}

// register creates the temporary endpoint pointing at localURL.
func (l *Listener) register(ctx context.Context, client *http.Client, api, localURL string, events []string) (registeredEndpoint, error) {
	var ep registeredEndpoint
	body, err := json.Marshal(map[string]any{
		"url":            localURL,
		"enabled_events": events,
		"description":    "devstack listen (temporary)",
	})
	if err != nil {
		return ep, err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/webhook_endpoints", bytes.NewReader(body))
	if err != nil {
		return ep, err
	}
	req.Header.Set("Authorization", "Bearer "+l.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "devstack-listen-"+rand.Text())
	resp, err := client.Do(req)
	if err != nil {
		return ep, fmt.Errorf("registering the webhook endpoint at %s: %w", api, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return ep, fmt.Errorf("registering the webhook endpoint: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		var p problem
		_ = json.Unmarshal(raw, &p)
		if p.Code == "url_forbidden" {
			return ep, fmt.Errorf("the API refused the loopback URL %s (400 url_forbidden): "+
				"start the API with BILLING_WEBHOOK_ALLOW_PRIVATE=true (devstack up sets it unless you set it to false)", localURL)
		}
		return ep, fmt.Errorf("registering the webhook endpoint: %s%s", resp.Status, p.describe())
	}
	if err := json.Unmarshal(raw, &ep); err != nil {
		return ep, fmt.Errorf("registering the webhook endpoint: decoding the answer: %w", err)
	}
	if ep.ID == "" || ep.Secret == "" {
		return ep, errors.New("registering the webhook endpoint: the answer lacks id or secret")
	}
	return ep, nil
}

// describe renders the code and detail of a problem, if any.
func (p problem) describe() string {
	var s string
	if p.Code != "" {
		s += " " + p.Code
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// deleteEndpoint deletes the temporary endpoint, printing a warning on out if it fails.
func (l *Listener) deleteEndpoint(client *http.Client, api, id string, out io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	target := api + "/v1/webhook_endpoints/" + url.PathEscape(id)
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, target, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+l.Token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode/100 != 2 {
			var p problem
			_ = json.Unmarshal(raw, &p)
			return fmt.Errorf("%s%s", resp.Status, p.describe())
		}
		return nil
	}()
	if err != nil {
		fmt.Fprintf(out, "warning: could not delete the temporary endpoint %s (%v); delete it with DELETE %s\n", id, err, target)
		return
	}
	fmt.Fprintf(out, "Deleted the temporary endpoint %s.\n", id)
}

// forwarder is the handler of the loopback listener.
type forwarder struct {
	verifier *webhooksig.Verifier
	target   string
	client   *http.Client
	out      *lockedWriter
}

// forwardedHeaders are the request headers copied to the forward target.
var forwardedHeaders = []string{
	webhooksig.HeaderID, webhooksig.HeaderTimestamp, webhooksig.HeaderSignature, "Content-Type",
}

// passedBackHeaders are the target's answer headers copied to the delivery's answer: they
// steer the API's retries.
var passedBackHeaders = []string{"Retry-After", "Content-Type"}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "webhook deliveries are POST requests", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDeliveryBody))
	if err != nil {
		f.out.printf("%s warning: could not read a delivery: %v\n", now(), err)
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}
	if err := f.verifier.Verify(r.Header, body); err != nil {
		f.out.printf("%s warning: rejected a delivery (webhook-id %q) with an invalid signature: %v\n",
			now(), r.Header.Get(webhooksig.HeaderID), err)
		http.Error(w, "invalid webhook signature", http.StatusBadRequest)
		return
	}
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &ev)
	if ev.ID == "" {
		ev.ID = r.Header.Get(webhooksig.HeaderID)
	}
	if ev.Type == "" {
		ev.Type = "(unknown type)"
	}

	status, header, respBody, err := f.forward(r.Context(), r.Header, body)
	if err != nil {
		f.out.printf("%s %s %s → failed: %v (answered 502)\n", now(), ev.Type, ev.ID, err)
		http.Error(w, "forwarding failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	f.out.printf("%s %s %s → %d %s\n", now(), ev.Type, ev.ID, status, http.StatusText(status))
	for _, k := range passedBackHeaders {
		if v := header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(respBody)
}

// forward posts body with the delivery's headers to the target and returns its answer.
func (f *forwarder) forward(ctx context.Context, h http.Header, body []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for _, k := range forwardedHeaders {
		if vs := h.Values(k); len(vs) > 0 {
			req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	// The API ignores the body of the answer; keep a little of it for curl users.
	respBody, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header, respBody, nil
}

func now() string { return time.Now().Format("2006-01-02 15:04:05") }

// lockedWriter serialises the lines of concurrent deliveries.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) printf(format string, args ...any) {
	fmt.Fprintf(l, format, args...)
}
