package client_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/client"
)

// Every code the API answers, decoded from the real API's answers.
func TestErrorsFromTheAPI(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "", nil)
	ctx := t.Context()
	captured, err := s.client.CreateCharge(ctx, visa(300))
	require.NoError(t, err)
	_, err = s.client.WaitCharge(ctx, captured.ID, 30*time.Second)
	require.NoError(t, err)
	readOnly := clientWith(t, "", s.merchant, "charges:read")
	badToken := clientWith(t, s.token[:len(s.token)-4]+"AAAA", s.merchant)

	cases := []struct {
		name   string
		call   func() error
		status int
		code   client.Code
		param  string
	}{
		{"missing parameter", func() error {
			_, err := s.client.CreateCharge(ctx, client.ChargeParams{Currency: "usd", PaymentMethod: "pm_card_visa"})
			return err
		}, 400, client.ErrParameterMissing, "amount"},
		{"invalid parameter", func() error {
			_, err := s.client.CreateCharge(ctx, client.ChargeParams{Amount: 100, Currency: "xts", PaymentMethod: "pm_card_visa"})
			return err
		}, 400, client.ErrParameterInvalid, "currency"},
		{"card number", func() error {
			p := visa(100)
			p.Metadata = map[string]string{"note": "4242 4242 4242 4242"}
			_, err := s.client.CreateCharge(ctx, p)
			return err
		}, 400, client.ErrRawCardDataRejected, ""},
		{"invalid idempotency key", func() error {
			_, err := s.client.CreateCharge(ctx, visa(100), client.WithIdempotencyKey(strings.Repeat("k", 256)))
			return err
		}, 400, client.ErrIdempotencyKeyInvalid, "Idempotency-Key"},
		{"not capturable", func() error {
			_, err := s.client.CaptureCharge(ctx, captured.ID, client.CaptureParams{})
			return err
		}, 400, client.ErrChargeNotCapturable, ""},
		{"not cancelable", func() error {
			_, err := s.client.CancelCharge(ctx, captured.ID)
			return err
		}, 400, client.ErrChargeNotCancelable, ""},
		{"refund too large", func() error {
			_, err := s.client.CreateRefund(ctx, client.RefundParams{Charge: captured.ID, Amount: 301})
			return err
		}, 400, client.ErrAmountTooLarge, ""},
		{"url invalid", func() error {
			_, err := s.client.CreateWebhookEndpoint(ctx, client.WebhookEndpointParams{URL: "ftp://example.com/hooks", EnabledEvents: []string{client.EventAll}})
			return err
		}, 400, client.ErrURLInvalid, "url"},
		{"body too large", func() error {
			p := visa(100)
			p.Description = strings.Repeat("a", 70<<10)
			_, err := s.client.CreateCharge(ctx, p)
			return err
		}, 413, client.ErrBodyTooLarge, ""},
		{"bad token", func() error { _, err := badToken.GetBalance(ctx); return err }, 401, client.ErrUnauthenticated, ""},
		{"scope", func() error { _, err := readOnly.CreateCharge(ctx, visa(100)); return err }, 403, client.ErrInsufficientScope, ""},
		{"unknown id", func() error { _, err := s.client.GetCharge(ctx, "ch_00000000000000000000000000"); return err }, 404, client.ErrResourceMissing, ""},
		{"key reused", func() error {
			if _, err := s.client.CreateCharge(ctx, visa(100), client.WithIdempotencyKey("reused")); err != nil {
				return err
			}
			_, err := s.client.CreateCharge(ctx, visa(101), client.WithIdempotencyKey("reused"))
			return err
		}, 422, client.ErrIdempotencyKeyReused, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *client.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.status, e.Status, "%v", err)
			require.Equal(t, tc.code, e.Code, "%v", err)
			if tc.param != "" {
				require.Equal(t, tc.param, e.Param)
			}
			require.NotEmpty(t, e.Detail)
			require.True(t, strings.HasPrefix(e.RequestID, "req_"), e.RequestID)
			require.ErrorIs(t, err, tc.code)
			require.NotErrorIs(t, err, client.ErrUnavailable)
			require.False(t, e.Retryable())
		})
	}
}

// A real 429 decodes with its Retry-After, and is retried.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "", &client.Config{MaxAttempts: 1})
	ctx := t.Context()
	var limited *client.Error
	for i := 0; i < 2000 && limited == nil; i++ {
		_, err := s.client.GetBalance(ctx)
		if err != nil {
			require.ErrorAs(t, err, &limited)
		}
	}
	require.NotNil(t, limited, "no 429 in 2000 requests")
	require.Equal(t, http.StatusTooManyRequests, limited.Status)
	require.ErrorIs(t, limited, client.ErrRateLimited)
	require.GreaterOrEqual(t, limited.RetryAfter, time.Second)
	require.True(t, limited.Retryable())

	// With retries, the same merchant gets through once the limit lets it.
	retrying, err := client.New(baseURL, s.token, &client.Config{MaxAttempts: 10})
	require.NoError(t, err)
	var resp client.Response
	_, err = retrying.GetBalance(ctx, client.WithResponse(&resp))
	require.NoError(t, err)
}

func TestErrorsOfAnotherProxy(t *testing.T) {
	t.Parallel()
	f := newFront(t, func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>bad gateway</html>"))
		return true
	})
	s := newSetup(t, f.URL, &client.Config{MaxAttempts: 2, MinRetryDelay: time.Millisecond})
	_, err := s.client.GetBalance(t.Context())
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, http.StatusBadGateway, e.Status)
	require.Empty(t, e.Code)
	require.Equal(t, "<html>bad gateway</html>", e.Detail)
	require.Len(t, f.seen(), 2, "a 502 is retried")
	for _, c := range []client.Code{client.ErrUnavailable, client.ErrInternal, ""} {
		require.False(t, errors.Is(err, c), "%q", c)
	}
}

// clientWith is a client with token (empty: one for merchant with scopes).
func clientWith(t *testing.T, token, merchant string, scopes ...string) *client.Client {
	t.Helper()
	if token == "" {
		var err error
		token, err = signToken(merchant, scopes...)
		require.NoError(t, err)
	}
	c, err := client.New(baseURL, token, &client.Config{MaxAttempts: 1})
	require.NoError(t, err)
	return c
}
