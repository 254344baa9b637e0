package service_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// Every error row of docs/api.md that applies to the charge routes, with its status, code and
// param, as problem details.
func TestErrors(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_errors")
	readOnly := s.token("merchant_errors", "charges:read")
	writeOnly := s.token("merchant_errors", "charges:write")

	expired, err := s.key.Sign(s.cfg.AuthIssuer, s.cfg.AuthAudience, "merchant_errors", allScopes, time.Second, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	wrongAudience, err := s.key.Sign(s.cfg.AuthIssuer, "someone-else", "merchant_errors", allScopes, time.Hour, time.Now())
	require.NoError(t, err)
	wrongIssuer, err := s.key.Sign("evil", s.cfg.AuthAudience, "merchant_errors", allScopes, time.Hour, time.Now())
	require.NoError(t, err)
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	foreign, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": s.cfg.AuthIssuer, "aud": s.cfg.AuthAudience, "sub": "merchant_errors",
		"exp": time.Now().Add(time.Hour).Unix(), "scope": "charges:write charges:read",
	}).SignedString(otherKey)
	require.NoError(t, err)
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"iss": s.cfg.AuthIssuer, "aud": s.cfg.AuthAudience, "sub": "merchant_errors",
		"exp": time.Now().Add(time.Hour).Unix(), "scope": "charges:write charges:read",
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)

	valid := chargeBody(1000, "pm_card_visa")
	bigMetadata := func(n, keyLen, valueLen int) string {
		var parts []string
		for i := range n {
			k := fmt.Sprintf("%0*d", keyLen, i)
			parts = append(parts, fmt.Sprintf("%q: %q", k, strings.Repeat("v", valueLen)))
		}
		return `"metadata": {` + strings.Join(parts, ", ") + `}`
	}

	type req struct {
		method, path, token, body string
		headers                   []string
	}
	post := func(body string, headers ...string) req {
		return req{"POST", "/v1/charges", tok, body, append([]string{"Idempotency-Key", newKey()}, headers...)}
	}
	cases := []struct {
		name   string
		req    req
		status int
		code   string
		param  string
	}{
		{"no token", req{"GET", "/v1/charges", "", "", nil}, 401, "unauthenticated", ""},
		{"garbage token", req{"GET", "/v1/charges", "not-a-jwt", "", nil}, 401, "unauthenticated", ""},
		{"expired token", req{"GET", "/v1/charges", expired, "", nil}, 401, "unauthenticated", ""},
		{"wrong audience", req{"GET", "/v1/charges", wrongAudience, "", nil}, 401, "unauthenticated", ""},
		{"wrong issuer", req{"GET", "/v1/charges", wrongIssuer, "", nil}, 401, "unauthenticated", ""},
		{"unknown signing key", req{"GET", "/v1/charges", foreign, "", nil}, 401, "unauthenticated", ""},
		{"alg none", req{"GET", "/v1/charges", none, "", nil}, 401, "unauthenticated", ""},
		{"read scope cannot create", req{"POST", "/v1/charges", readOnly, valid, []string{"Idempotency-Key", newKey()}}, 403, "insufficient_scope", ""},
		{"write scope cannot read", req{"GET", "/v1/charges", writeOnly, "", nil}, 403, "insufficient_scope", ""},
		{"no idempotency key", req{"POST", "/v1/charges", tok, valid, nil}, 400, "idempotency_key_missing", "Idempotency-Key"},
		{"idempotency key too long", post(valid, "Idempotency-Key", strings.Repeat("k", 256)), 400, "idempotency_key_invalid", "Idempotency-Key"},
		{"idempotency key not printable", post(valid, "Idempotency-Key", "k\tey"), 400, "idempotency_key_invalid", "Idempotency-Key"},
		{"body too large", post(`{"description": "` + strings.Repeat("x", 70<<10) + `"}`), 413, "body_too_large", ""},
		{"not json content type", post(valid, "Content-Type", "text/plain"), 415, "unsupported_media_type", ""},
		{"form content type", post(valid, "Content-Type", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", ""},
		{"malformed json", post(`{"amount": 1000,`), 400, "invalid_json", ""},
		{"trailing data", post(valid + ` {}`), 400, "invalid_json", ""},
		{"not an object", post(`[1, 2]`), 400, "invalid_json", ""},
		{"unknown field", post(chargeBody(1000, "pm_card_visa", `"colour": "red"`)), 400, "parameter_unknown", "colour"},
		{"amount wrong type", post(`{"amount": "1000", "currency": "usd", "payment_method": "pm_card_visa"}`), 400, "parameter_invalid", "amount"},
		{"amount fractional", post(`{"amount": 10.5, "currency": "usd", "payment_method": "pm_card_visa"}`), 400, "parameter_invalid", "amount"},
		{"amount missing", post(`{"currency": "usd", "payment_method": "pm_card_visa"}`), 400, "parameter_missing", "amount"},
		{"amount zero", post(chargeBody(0, "pm_card_visa")), 400, "parameter_invalid", "amount"},
		{"amount too large", post(chargeBody(100_000_000, "pm_card_visa")), 400, "parameter_invalid", "amount"},
		{"currency missing", post(`{"amount": 1000, "payment_method": "pm_card_visa"}`), 400, "parameter_missing", "currency"},
		{"currency unknown", post(`{"amount": 1000, "currency": "zzz", "payment_method": "pm_card_visa"}`), 400, "parameter_invalid", "currency"},
		{"payment method missing", post(`{"amount": 1000, "currency": "usd"}`), 400, "parameter_missing", "payment_method"},
		{"payment method not a token", post(chargeBody(1000, "card_visa")), 400, "parameter_invalid", "payment_method"},
		{"capture wrong type", post(chargeBody(1000, "pm_card_visa", `"capture": "yes"`)), 400, "parameter_invalid", "capture"},
		{"description too long", post(chargeBody(1000, "pm_card_visa", `"description": "`+strings.Repeat("d", 1001)+`"`)), 400, "parameter_invalid", "description"},
		{"customer too long", post(chargeBody(1000, "pm_card_visa", `"customer": "`+strings.Repeat("c", 256)+`"`)), 400, "parameter_invalid", "customer"},
		{"metadata too many keys", post(chargeBody(1000, "pm_card_visa", bigMetadata(51, 3, 1))), 400, "parameter_invalid", "metadata"},
		{"metadata key too long", post(chargeBody(1000, "pm_card_visa", bigMetadata(1, 41, 1))), 400, "parameter_invalid", "metadata"},
		{"metadata value too long", post(chargeBody(1000, "pm_card_visa", bigMetadata(1, 3, 501))), 400, "parameter_invalid", "metadata"},
		{"metadata value not a string", post(chargeBody(1000, "pm_card_visa", `"metadata": {"n": 1}`)), 400, "parameter_invalid", "metadata"},
		{"card number in metadata", post(chargeBody(1000, "pm_card_visa", `"metadata": {"note": "4242424242424242"}`)), 400, "raw_card_data_rejected", ""},
		{"card number with spaces", post(chargeBody(1000, "pm_card_visa", `"description": "card 4242 4242 4242 4242 exp 12/30"`)), 400, "raw_card_data_rejected", ""},
		{"card number with dashes", post(chargeBody(1000, "pm_card_visa", `"customer": "5555-5555-5555-4444"`)), 400, "raw_card_data_rejected", ""},
		{"card number as a number", post(chargeBody(1000, "pm_card_visa", `"card": 4000056655665556`)), 400, "raw_card_data_rejected", ""},
		{"card number as payment method", post(`{"amount": 1000, "currency": "usd", "payment_method": "378282246310005"}`), 400, "raw_card_data_rejected", ""},
		{"unknown charge", req{"GET", "/v1/charges/ch_01jdx8q4kcf0wt9a5y0s7m2n3p", tok, "", nil}, 404, "resource_missing", "id"},
		{"malformed charge id", req{"GET", "/v1/charges/nope", tok, "", nil}, 404, "resource_missing", "id"},
		{"wait too long", req{"GET", "/v1/charges/ch_01jdx8q4kcf0wt9a5y0s7m2n3p?wait=61s", tok, "", nil}, 400, "parameter_invalid", "wait"},
		{"wait malformed", req{"GET", "/v1/charges/ch_01jdx8q4kcf0wt9a5y0s7m2n3p?wait=soon", tok, "", nil}, 400, "parameter_invalid", "wait"},
		{"limit zero", req{"GET", "/v1/charges?limit=0", tok, "", nil}, 400, "parameter_invalid", "limit"},
		{"limit too large", req{"GET", "/v1/charges?limit=101", tok, "", nil}, 400, "parameter_invalid", "limit"},
		{"limit not a number", req{"GET", "/v1/charges?limit=ten", tok, "", nil}, 400, "parameter_invalid", "limit"},
		{"starting_after malformed", req{"GET", "/v1/charges?starting_after=re_1", tok, "", nil}, 400, "parameter_invalid", "starting_after"},
		{"status unknown", req{"GET", "/v1/charges?status=done", tok, "", nil}, 400, "parameter_invalid", "status"},
		{"unknown query parameter", req{"GET", "/v1/charges?colour=red", tok, "", nil}, 400, "parameter_unknown", "colour"},
		{"unknown route", req{"GET", "/v1/nothing", tok, "", nil}, 404, "resource_missing", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.do(tc.req.method, tc.req.path, tc.req.token, tc.req.body, tc.req.headers...)
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
			require.NotEmpty(t, r.header.Get("X-Request-Id"))
			p := r.json(t)
			require.Equal(t, "about:blank", p["type"])
			require.Equal(t, http.StatusText(tc.status), p["title"])
			require.EqualValues(t, tc.status, p["status"])
			require.Equal(t, tc.code, p["code"])
			if tc.param != "" {
				require.Equal(t, tc.param, p["param"])
			}
			if tc.status == http.StatusUnauthorized {
				require.Equal(t, `Bearer error="invalid_token"`, r.header.Get("WWW-Authenticate"))
			}
			// Card data is never echoed back.
			require.NotContains(t, string(r.body), "4242424242424242")
			require.NotContains(t, string(r.body), "4242 4242")
		})
	}
}
