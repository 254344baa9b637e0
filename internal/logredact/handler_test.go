package logredact_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/logredact"
)

const (
	jwt        = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJtX2UyZSIsInNjb3BlIjoiY2hhcmdlczp3cml0ZSJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtMTIzNDU2Nzg5MA"
	whsec      = "whsec_c2VjcmV0LWJ5dGVzLWZvci10aGUtZW5kcG9pbnQ="
	secretKey  = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJAAA="
	card       = "4242 4242 4242 4242"
	cardDashed = "5555-5555-5555-4444"
)

// leaks are the secrets no log line may hold, in any form the tests put them.
var leaks = []string{jwt, whsec, secretKey, "4242424242424242", card, cardDashed, "hunter2-password", "sk_live_abcdef"}

// setup returns a JSON and a text logger through the redacting handler, and their output.
func setup(t *testing.T) (loggers []*slog.Logger, out func() string) {
	t.Helper()
	var jsonBuf, textBuf bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	loggers = []*slog.Logger{
		slog.New(logredact.New(slog.NewJSONHandler(&jsonBuf, opts), secretKey)),
		slog.New(logredact.New(slog.NewTextHandler(&textBuf, opts), secretKey)),
	}
	return loggers, func() string { return jsonBuf.String() + textBuf.String() }
}

func requireClean(t *testing.T, out string) {
	t.Helper()
	require.NotEmpty(t, out)
	for _, l := range leaks {
		require.NotContains(t, out, l)
	}
	require.NotContains(t, out, "c2VjcmV0LWJ5dGVzLWZvci10aGUtZW5kcG9pbnQ") // the whsec_ body
}

type valuer struct{ v slog.Value }

func (v valuer) LogValue() slog.Value { return v.v }

type request struct {
	Header map[string]string
	Body   string
}

func TestRedactsEverywhere(t *testing.T) {
	t.Parallel()
	cases := map[string]func(l *slog.Logger){
		"jwt in message":       func(l *slog.Logger) { l.Info("verifying " + jwt) },
		"bearer in message":    func(l *slog.Logger) { l.Info("header Authorization: Bearer sk_live_abcdef was sent") },
		"jwt attr":             func(l *slog.Logger) { l.Info("x", "tok", jwt) },
		"whsec in message":     func(l *slog.Logger) { l.Warn("endpoint secret " + whsec + " rotated") },
		"whsec attr":           func(l *slog.Logger) { l.Info("x", "value", "s="+whsec) },
		"secret key literal":   func(l *slog.Logger) { l.Error("bad key " + secretKey) },
		"secret key in attr":   func(l *slog.Logger) { l.Info("x", "env", "BILLING_WEBHOOK_SECRET_KEY="+secretKey) },
		"sensitive key":        func(l *slog.Logger) { l.Info("x", "password", "hunter2-password") },
		"sensitive key camel":  func(l *slog.Logger) { l.Info("x", "apiKey", "sk_live_abcdef") },
		"sensitive key header": func(l *slog.Logger) { l.Info("x", "Authorization", "Basic sk_live_abcdef") },
		"card in message":      func(l *slog.Logger) { l.Info("description: pay with " + card + " please") },
		"card attr dashed":     func(l *slog.Logger) { l.Info("x", "description", "card "+cardDashed) },
		"card int":             func(l *slog.Logger) { l.Info("x", "n", int64(4242424242424242)) },
		"card uint":            func(l *slog.Logger) { l.Info("x", "n", uint64(4242424242424242)) },
		"group": func(l *slog.Logger) {
			l.Info("x", slog.Group("req", "id", "r1", slog.Group("h", "auth", "Bearer "+jwt)))
		},
		"group sensitive key": func(l *slog.Logger) { l.Info("x", slog.Group("req", "token", "opaque-sk_live_abcdef")) },
		"group of sensitive":  func(l *slog.Logger) { l.Info("x", slog.Group("secret", "a", "hunter2-password")) },
		"error":               func(l *slog.Logger) { l.Error("x", "error", fmt.Errorf("charging %s: %w", card, errors.New("no"))) },
		"wrapped error jwt":   func(l *slog.Logger) { l.Error("x", "err", fmt.Errorf("token %s: expired", jwt)) },
		"log valuer":          func(l *slog.Logger) { l.Info("x", "v", valuer{slog.StringValue(whsec)}) },
		"log valuer group": func(l *slog.Logger) {
			l.Info("x", "v", valuer{slog.GroupValue(slog.String("webhook_secret_key", "abc"), slog.String("d", card))})
		},
		"struct value": func(l *slog.Logger) {
			l.Info("x", "req", request{Header: map[string]string{"a": "Bearer " + jwt}, Body: card})
		},
		"bytes":                 func(l *slog.Logger) { l.Info("x", "body", []byte(`{"secret":"`+whsec+`"}`)) },
		"with attrs":            func(l *slog.Logger) { l.With("token", jwt, "k", whsec).Info("x") },
		"with group then attrs": func(l *slog.Logger) { l.WithGroup("g").With("d", card).Info("x", "e", jwt) },
		"url password":          func(l *slog.Logger) { l.Info("x", "url", "mongodb://billing:hunter2-password@db:27017/billing") },
		"context":               func(l *slog.Logger) { l.InfoContext(context.Background(), "x", "a", jwt) },
	}
	for name, log := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			loggers, out := setup(t)
			for _, l := range loggers {
				log(l)
			}
			requireClean(t, out())
		})
	}
}

// What is not a secret passes untouched, byte for byte as without the redactor.
func TestLeavesOrdinaryValues(t *testing.T) {
	t.Parallel()
	log := func(l *slog.Logger) {
		l.Info("charge settled", "charge_id", "ch_01JEXAMPLE", "amount", 1999, "merchant", "m_1",
			"authorization_id", "sim_auth_ch_1", "idempotency_key", "order-6735", "tls_key_file", "/etc/key.pem",
			"phone", "+1 415 555 0100", "order", "order 12345678901234", "at", time.Unix(1_700_000_000, 0).UTC(),
			"took", 1500*time.Millisecond, "host", "api.example.com.internal", "url", "nats://127.0.0.1:4222",
			"n", int64(1234567890123456), "error", errors.New("connection refused"),
			slog.Group("g", "key", "ordinary", "they", "eyes only"))
	}
	var plain, redacted bytes.Buffer
	log(slog.New(slog.NewJSONHandler(&plain, nil)))
	log(slog.New(logredact.New(slog.NewJSONHandler(&redacted, nil), secretKey)))
	// The time of the record differs; everything after it is the same.
	cut := func(s string) string { return s[strings.Index(s, `"level"`):] }
	require.Equal(t, cut(plain.String()), cut(redacted.String()))
}

func TestRedactText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Bearer abc.def":                          "Bearer ***",
		"authorization: bearer  xyz, next":        "authorization: bearer  ***, next",
		"t=" + jwt + " end":                       "t=*** end",
		`{"s":"` + whsec + `"}`:                   `{"s":"whsec_***"}`,
		"nats://user:pw@h1:4222,nats://u2:p@h2":   "nats://user:***@h1:4222,nats://u2:***@h2",
		"nats://tok3n@h1:4222":                    "nats://***@h1:4222",
		"https://example.com/a@b":                 "https://example.com/a@b",
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.":    "***",
		"monkey.eyJhbGci.x":                       "monkey.eyJhbGci.x",
		"bearers of news; the bearer":             "bearers of news; the bearer",
		"service.namespace.svc.cluster.local:443": "service.namespace.svc.cluster.local:443",
	} {
		require.Equal(t, want, logredact.RedactText(in), in)
	}
}

func TestSensitiveKey(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"token", "access_token", "Authorization", "webhook_secret_key", "WEBHOOK-SECRET",
		"password", "db.password", "apiKey", "x_api_key", "client_secret", "auth_hs256_secret", "cookie"} {
		require.True(t, logredact.SensitiveKey(k), k)
	}
	for _, k := range []string{"authorization_id", "idempotency_key", "key", "tls_key_file", "token_count",
		"secret_rotated_at", "keys", "auth_jwks_file", "nats_creds", ""} {
		require.False(t, logredact.SensitiveKey(k), k)
	}
}

// A record with nothing to redact costs the redactor no allocation: it reaches the
// handler as it came.
func TestNoAllocationWhenClean(t *testing.T) {
	h := logredact.New(slog.DiscardHandler, secretKey)
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	r.AddAttrs(slog.String("request_id", "req_0123456789abcdef01234567"), slog.String("method", "POST"),
		slog.String("route", "/v1/charges"), slog.Int("status", 202), slog.Int64("duration_ms", 3),
		slog.String("merchant", "merchant_dev"))
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() { _ = h.Handle(ctx, r) })
	require.Zero(t, allocs)
}

// BenchmarkHandleClean is the redactor's cost on the ingest's request line, which holds
// nothing to redact.
func BenchmarkHandleClean(b *testing.B) {
	h := logredact.New(slog.DiscardHandler, secretKey)
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	r.AddAttrs(slog.String("request_id", "req_0123456789abcdef01234567"), slog.String("method", "POST"),
		slog.String("route", "/v1/charges"), slog.Int("status", 202), slog.Int64("duration_ms", 3),
		slog.String("merchant", "merchant_dev"))
	ctx := context.Background()
	for b.Loop() {
		_ = h.Handle(ctx, r)
	}
}
