// Package client is a Go client of the billing API: typed requests and answers for every
// endpoint, an idempotency key on every POST, retries that are safe to make, long polls,
// list iterators and webhook verification.
//
// Create a charge, wait for it to settle and list charges:
//
//	c, err := client.New("http://localhost:8080", token, nil)
//	if err != nil { … }
//	ch, err := c.CreateCharge(ctx, client.ChargeParams{
//		Amount: 1999, Currency: "usd", PaymentMethod: "pm_card_visa",
//	}, client.WithIdempotencyKey("order-6735"))
//	if err != nil { … }
//	ch, err = c.WaitCharge(ctx, ch.ID, 30*time.Second) // succeeded, failed or requires_capture
//	for ch, err := range c.ListCharges(ctx, client.ListChargesParams{Status: client.StatusFailed}) { … }
//
// Every POST carries an Idempotency-Key: the caller's (WithIdempotencyKey), or one the
// client makes. A connection error, a 5xx, a 429 or a 409 idempotency_key_in_use is
// retried with exponential backoff and jitter, at least as late as the answer's
// Retry-After, with the same key and the same body, so that a retry never charges twice
// (Config.MaxAttempts bounds it; 1 turns retries off). Other answers are returned at once.
//
// Errors the API answers are *Error, with the status, the code, the parameter at fault,
// the detail and Retry-After. Every code is a Code constant that is itself an error, to
// match with errors.Is:
//
//	if errors.Is(err, client.ErrIdempotencyKeyReused) { … }
//
// Webhook deliveries are verified with a WebhookVerifier (package webhooksig) and
// decoded by ParseWebhook.
package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config tunes a Client. The zero value (or nil) takes every default.
type Config struct {
	// HTTPClient sends the requests. Its Timeout, if any, must leave room for long polls
	// (WaitCharge holds a request up to 60 s). Defaults to http.DefaultClient.
	HTTPClient *http.Client
	// MaxAttempts bounds how many times one call is sent, the first included: 1 turns
	// retries off. Defaults to 4.
	MaxAttempts int
	// MinRetryDelay is the backoff before the first retry; it doubles with each retry up
	// to MaxRetryDelay, and each delay is jittered down by up to half. A longer
	// Retry-After is waited instead, unless it would outlast ctx's deadline: the call
	// then returns the answer at once. They default to 100ms and 5s.
	MinRetryDelay time.Duration
	MaxRetryDelay time.Duration
}

// Client calls the billing API as one merchant. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	cfg   Config
}

// New returns a client of the API at baseURL (such as "http://localhost:8080") that
// authenticates with token, a JWT. cfg may be nil.
func New(baseURL, token string, cfg *Config) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q is not an absolute http(s) URL", baseURL)
	}
	if token == "" {
		return nil, errors.New("client: token is empty")
	}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.MaxAttempts < 0 || c.MinRetryDelay < 0 || c.MaxRetryDelay < 0 {
		return nil, errors.New("client: Config.MaxAttempts, MinRetryDelay and MaxRetryDelay must not be negative")
	}
	c.HTTPClient = cmp.Or(c.HTTPClient, http.DefaultClient)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, 4)
	c.MinRetryDelay = cmp.Or(c.MinRetryDelay, 100*time.Millisecond)
	c.MaxRetryDelay = max(cmp.Or(c.MaxRetryDelay, 5*time.Second), c.MinRetryDelay)
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, token: token, cfg: c}, nil
}

// Response describes the answer that a call returned, for callers that want more than
// its body (see WithResponse).
type Response struct {
	// StatusCode and Header are the final answer's; zero when none came.
	StatusCode int
	Header     http.Header
	// RequestID is the server's id of the request (X-Request-Id), to quote in a report.
	RequestID string
	// Replayed is true when the answer is the stored answer of an earlier request with
	// the same idempotency key (Idempotent-Replayed).
	Replayed bool
	// IdempotencyKey is the key the POST was sent with: the caller's or the one made.
	IdempotencyKey string
	// Attempts counts the requests sent, retries included.
	Attempts int
}

// RequestOption adjusts one call.
type RequestOption func(*request)

// WithIdempotencyKey sends a POST with key (1-255 printable ASCII characters) instead of
// a key of the client's making. Use a key derived from the operation (an order number)
// to make a repeat after a crash of the caller safe too.
func WithIdempotencyKey(key string) RequestOption {
	return func(r *request) { r.key = key }
}

// WithResponse fills dst with what the call's answer said besides its body.
func WithResponse(dst *Response) RequestOption {
	return func(r *request) { r.response = dst }
}

// request is one call: what to send, and where to put the answer.
type request struct {
	method   string
	path     string
	query    url.Values
	body     []byte
	key      string
	response *Response
}

// get sends a GET of path with query q and returns the answer.
func get[T any](ctx context.Context, c *Client, path string, q url.Values, opts []RequestOption) (*T, error) {
	return call[T](ctx, c, request{method: http.MethodGet, path: path, query: q}, nil, opts)
}

// post sends a POST of in to path and returns the answer.
func post[T any](ctx context.Context, c *Client, path string, in any, opts []RequestOption) (*T, error) {
	return call[T](ctx, c, request{method: http.MethodPost, path: path}, in, opts)
}

// call sends r with in as its JSON body (if not nil), retrying as the package
// documentation says, and decodes a 2xx answer.
func call[T any](ctx context.Context, c *Client, r request, in any, opts []RequestOption) (*T, error) {
	for _, o := range opts {
		o(&r)
	}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("client: encoding %s %s: %w", r.method, r.path, err)
		}
		r.body = b
	}
	if r.method == http.MethodPost && r.key == "" {
		r.key = "cli_" + rand.Text()
	}
	resp := cmp.Or(r.response, &Response{})
	body, err := c.send(ctx, &r, resp)
	if err != nil {
		return nil, err
	}
	out := new(T)
	if err := json.Unmarshal(body, out); err != nil {
		return nil, fmt.Errorf("client: decoding the %d answer to %s %s: %w", resp.StatusCode, r.method, r.path, err)
	}
	return out, nil
}

// send sends r until it gets an answer that is not to be retried, or attempts run out,
// and returns a 2xx answer's body; resp records the last answer.
func (c *Client) send(ctx context.Context, r *request, resp *Response) ([]byte, error) {
	u := *c.base
	u.Path += r.path
	u.RawQuery = r.query.Encode()
	for attempt := 1; ; attempt++ {
		*resp = Response{IdempotencyKey: r.key, Attempts: attempt}
		body, err := c.attempt(ctx, r, u.String(), resp)
		if err == nil {
			return body, nil
		}
		if ctx.Err() != nil || attempt >= c.cfg.MaxAttempts || !retryable(err) {
			return nil, err
		}
		wait := c.backoff(attempt)
		if e := (*Error)(nil); errors.As(err, &e) {
			wait = max(wait, e.RetryAfter)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return nil, err // the wait would outlast the caller: answer now
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// attempt sends r once. It returns a 2xx answer's body, or the error: an *Error for
// any other answer, or a *connError.
func (c *Client) attempt(ctx context.Context, r *request, target string, resp *Response) ([]byte, error) {
	var rd io.Reader
	if r.body != nil {
		rd = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", r.method, r.path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.key != "" {
		req.Header.Set("Idempotency-Key", r.key)
	}
	res, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, &connError{op: r.method + " " + r.path, err: err}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, &connError{op: r.method + " " + r.path, err: err}
	}
	resp.StatusCode, resp.Header = res.StatusCode, res.Header
	resp.RequestID = res.Header.Get("X-Request-Id")
	resp.Replayed = res.Header.Get("Idempotent-Replayed") == "true"
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return body, nil
	}
	return nil, decodeError(res, body)
}

// backoff is the jittered delay before retry n (from 1): MinRetryDelay doubled n-1
// times, at most MaxRetryDelay, less a random part of up to half.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.MinRetryDelay
	for i := 1; i < n && d < c.cfg.MaxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxRetryDelay)
	return d - mathrand.N(d/2+1)
}

// connError is a request that got no complete answer: it may or may not have been
// executed.
type connError struct {
	op  string
	err error
}

func (e *connError) Error() string { return "client: " + e.op + ": " + e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// retryable reports whether an attempt that failed with err may be repeated: every
// request of the API is safe to repeat (reads, POSTs with their key, PATCH and DELETE,
// which set a state), so this is about whether a repeat can succeed.
func retryable(err error) bool {
	var ce *connError
	if errors.As(err, &ce) {
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}
