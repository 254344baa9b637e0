package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/client"
)

// loseFirstAnswer is a transport that sends the first request to the API and then
// pretends the connection broke before the answer came: the API executed it, the caller
// cannot know.
type loseFirstAnswer struct {
	mu   sync.Mutex
	sent []attempt
}

func (l *loseFirstAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	l.mu.Lock()
	l.sent = append(l.sent, attempt{method: r.Method, path: r.URL.Path, key: r.Header.Get("Idempotency-Key"), body: body})
	first := len(l.sent) == 1
	l.mu.Unlock()
	res, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !first {
		return res, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return nil, errors.New("connection reset by peer")
}

func TestRetryAfterLostAnswerSendsTheSameKeyAndBody(t *testing.T) {
	t.Parallel()
	lose := &loseFirstAnswer{}
	s := newSetup(t, "", &client.Config{HTTPClient: &http.Client{Transport: lose}, MinRetryDelay: time.Millisecond})
	ctx := t.Context()

	var resp client.Response
	ch, err := s.client.CreateCharge(ctx, visa(4200), client.WithResponse(&resp))
	require.NoError(t, err)
	require.Equal(t, 2, resp.Attempts)
	require.True(t, resp.Replayed, "the retry gets the first request's answer")
	require.NotEmpty(t, lose.sent[0].key)
	require.Equal(t, lose.sent[0], lose.sent[1], "the same method, path, key and body")

	require.Len(t, lose.sent, 2)

	// One charge only, the one of the lost answer.
	_, err = s.client.WaitCharge(ctx, ch.ID, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, []string{ch.ID}, ids(t, s.client.ListCharges(ctx, client.ListChargesParams{})))
}

// problem answers w with problem details.
func problem(w http.ResponseWriter, status int, code client.Code, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"type":"about:blank","title":"x","status":0,"code":"` + string(code) + `","detail":"injected"}`))
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFront(t, func(n int, w http.ResponseWriter, _ *http.Request) bool {
		switch n {
		case 1:
			problem(w, http.StatusServiceUnavailable, client.ErrUnavailable, "1")
		case 2:
			problem(w, http.StatusConflict, client.ErrIdempotencyKeyInUse, "")
		default:
			return false
		}
		return true
	})
	s := newSetup(t, f.URL, &client.Config{MinRetryDelay: time.Millisecond})
	ctx := t.Context()

	start := time.Now()
	var resp client.Response
	ch, err := s.client.CreateCharge(ctx, visa(4300), client.WithIdempotencyKey("order-4300"), client.WithResponse(&resp))
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After: 1 is waited")
	require.Equal(t, 3, resp.Attempts)
	require.False(t, resp.Replayed)
	seen := f.seen()
	require.Len(t, seen, 3)
	for _, a := range seen[1:] {
		require.Equal(t, seen[0], a)
	}
	require.Equal(t, "order-4300", seen[0].key)
	require.JSONEq(t, `{"amount":4300,"currency":"usd","payment_method":"pm_card_visa"}`, string(seen[0].body))
	_, err = s.client.WaitCharge(ctx, ch.ID, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, []string{ch.ID}, ids(t, s.client.ListCharges(ctx, client.ListChargesParams{})))
}

func TestNoRetryOfOtherAnswers(t *testing.T) {
	t.Parallel()
	f := newFront(t, func(_ int, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v1/charges/ch_busy/capture" {
			problem(w, http.StatusConflict, client.ErrOperationInProgress, "1")
			return true
		}
		return false
	})
	s := newSetup(t, f.URL, &client.Config{MinRetryDelay: time.Millisecond})
	ctx := t.Context()

	_, err := s.client.CreateCharge(ctx, visa(1), client.WithIdempotencyKey("k"))
	require.NoError(t, err)
	_, err = s.client.CreateCharge(ctx, visa(2), client.WithIdempotencyKey("k"))
	require.ErrorIs(t, err, client.ErrIdempotencyKeyReused)
	_, err = s.client.GetCharge(ctx, "ch_00000000000000000000000000")
	require.ErrorIs(t, err, client.ErrResourceMissing)
	_, err = s.client.CaptureCharge(ctx, "ch_busy", client.CaptureParams{})
	require.ErrorIs(t, err, client.ErrOperationInProgress)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, time.Second, e.RetryAfter)
	require.Len(t, f.seen(), 4, "one request per call")
}

func TestRetriesAreBounded(t *testing.T) {
	t.Parallel()
	f := newFront(t, func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n%2 == 1 {
			problem(w, http.StatusInternalServerError, client.ErrInternal, "")
		} else {
			problem(w, http.StatusServiceUnavailable, client.ErrUnavailable, "")
		}
		return true
	})
	s := newSetup(t, f.URL, &client.Config{MaxAttempts: 3, MinRetryDelay: time.Millisecond})
	var resp client.Response
	_, err := s.client.GetBalance(t.Context(), client.WithResponse(&resp))
	require.ErrorIs(t, err, client.ErrInternal, "the last answer")
	require.Len(t, f.seen(), 3)
	require.Equal(t, 3, resp.Attempts)
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)

	off := newSetup(t, f.URL, &client.Config{MaxAttempts: 1})
	_, err = off.client.GetBalance(t.Context())
	require.Error(t, err)
	require.Len(t, f.seen(), 4, "MaxAttempts 1: no retry")
}

// A Retry-After that outlasts the caller's deadline ends the call at once.
func TestRetryRespectsTheContext(t *testing.T) {
	t.Parallel()
	f := newFront(t, func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		problem(w, http.StatusTooManyRequests, client.ErrRateLimited, "30")
		return true
	})
	s := newSetup(t, f.URL, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.client.CreateCharge(ctx, visa(1))
	require.ErrorIs(t, err, client.ErrRateLimited)
	require.Less(t, time.Since(start), time.Second)
	require.Len(t, f.seen(), 1)

	// Canceled while waiting to retry: the call ends with the last answer.
	ctx, cancel = context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = s.client.CreateCharge(ctx, visa(1))
	require.ErrorIs(t, err, client.ErrRateLimited)
	require.Less(t, time.Since(start), 5*time.Second)
}
