package service_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
)

// These tests hold to what the ingest answers: the 202s, their replays, and the requests
// it refuses at once. What a worker then makes of a capture, cancel or refund is the
// worker's tests' to check.

// authorize creates a charge of amount with capture false and waits until it is
// requires_capture.
func (s *system) authorize(token string, amount int) map[string]any {
	s.t.Helper()
	c := s.settle(token, s.create(token, chargeBody(amount, "pm_card_visa", `"capture": false`))["id"].(string))
	require.Equal(s.t, "requires_capture", c["status"])
	return c
}

// settled creates a charge of amount with payment method pm and waits until it is
// settled with status.
func (s *system) settled(token string, amount int, pm, status string) map[string]any {
	s.t.Helper()
	c := s.settle(token, s.create(token, chargeBody(amount, pm))["id"].(string))
	require.Equal(s.t, status, c["status"])
	return c
}

// Every error row of docs/api.md that applies to capture, cancel, refunds and the balance.
func TestChargeOperationErrors(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	const m = "merchant_op_errors"
	tok := s.token(m)
	readOnly := s.token(m, "charges:read")
	writeOnly := s.token(m, "charges:write")
	other := s.token("merchant_op_errors_other")

	authorized := s.authorize(tok, 1000)["id"].(string)
	succeeded := s.settled(tok, 1000, "pm_card_visa", "succeeded")["id"].(string)
	failed := s.settled(tok, 1000, "pm_card_chargeDeclined", "failed")["id"].(string)
	theirs := s.authorize(other, 1000)["id"].(string)
	theirsSucceeded := s.settled(other, 1000, "pm_card_visa", "succeeded")["id"].(string)
	unknownCharge := charge.NewID(charge.PrefixCharge)
	unknownRefund := charge.NewID(charge.PrefixRefund)

	type req struct {
		method, path, token, body string
		headers                   []string
	}
	post := func(path, body string, headers ...string) req {
		return req{"POST", path, tok, body, append([]string{"Idempotency-Key", newKey()}, headers...)}
	}
	capture := func(id string) string { return "/v1/charges/" + id + "/capture" }
	cancel := func(id string) string { return "/v1/charges/" + id + "/cancel" }
	refund := func(fields string) req { return post("/v1/refunds", "{"+fields+"}") }
	cases := []struct {
		name   string
		req    req
		status int
		code   string
		param  string
	}{
		// Scopes.
		{"read scope cannot capture", req{"POST", capture(authorized), readOnly, `{}`, []string{"Idempotency-Key", newKey()}}, 403, "insufficient_scope", ""},
		{"read scope cannot cancel", req{"POST", cancel(authorized), readOnly, "", []string{"Idempotency-Key", newKey()}}, 403, "insufficient_scope", ""},
		{"read scope cannot refund", req{"POST", "/v1/refunds", readOnly, `{"charge": "` + succeeded + `"}`, []string{"Idempotency-Key", newKey()}}, 403, "insufficient_scope", ""},
		{"write scope cannot list refunds", req{"GET", "/v1/refunds", writeOnly, "", nil}, 403, "insufficient_scope", ""},
		{"write scope cannot read a refund", req{"GET", "/v1/refunds/" + unknownRefund, writeOnly, "", nil}, 403, "insufficient_scope", ""},
		{"write scope cannot read the balance", req{"GET", "/v1/balance", writeOnly, "", nil}, 403, "insufficient_scope", ""},
		{"no token on balance", req{"GET", "/v1/balance", "", "", nil}, 401, "unauthenticated", ""},

		// Idempotency keys.
		{"capture without idempotency key", req{"POST", capture(authorized), tok, `{}`, nil}, 400, "idempotency_key_missing", "Idempotency-Key"},
		{"cancel without idempotency key", req{"POST", cancel(authorized), tok, "", nil}, 400, "idempotency_key_missing", "Idempotency-Key"},
		{"refund without idempotency key", req{"POST", "/v1/refunds", tok, `{"charge": "` + succeeded + `"}`, nil}, 400, "idempotency_key_missing", "Idempotency-Key"},
		{"refund idempotency key too long", post("/v1/refunds", `{"charge": "`+succeeded+`"}`, "Idempotency-Key", strings.Repeat("k", 256)), 400, "idempotency_key_invalid", "Idempotency-Key"},

		// Bodies.
		{"capture amount zero", post(capture(authorized), `{"amount": 0}`), 400, "parameter_invalid", "amount"},
		{"capture amount wrong type", post(capture(authorized), `{"amount": "500"}`), 400, "parameter_invalid", "amount"},
		{"capture unknown field", post(capture(authorized), `{"amount": 500, "currency": "usd"}`), 400, "parameter_unknown", "currency"},
		{"capture card number", post(capture(authorized), `{"amount": 500, "note": "4242424242424242"}`), 400, "raw_card_data_rejected", ""},
		{"capture malformed json", post(capture(authorized), `{"amount": `), 400, "invalid_json", ""},
		{"capture not json content type", post(capture(authorized), `{}`, "Content-Type", "text/plain"), 415, "unsupported_media_type", ""},
		{"capture query parameter", post(capture(authorized)+"?amount=5", `{}`), 400, "parameter_unknown", "amount"},
		{"cancel unknown field", post(cancel(authorized), `{"reason": "duplicate"}`), 400, "parameter_unknown", "reason"},
		{"cancel not an object", post(cancel(authorized), `[]`), 400, "invalid_json", ""},
		{"refund charge missing", refund(`"amount": 500`), 400, "parameter_missing", "charge"},
		{"refund charge not a charge id", refund(`"charge": "` + unknownRefund + `"`), 400, "parameter_invalid", "charge"},
		{"refund charge wrong type", refund(`"charge": 5`), 400, "parameter_invalid", "charge"},
		{"refund amount zero", refund(`"charge": "` + succeeded + `", "amount": 0`), 400, "parameter_invalid", "amount"},
		{"refund amount too large for any charge", refund(`"charge": "` + succeeded + `", "amount": 100000000`), 400, "parameter_invalid", "amount"},
		{"refund amount fractional", refund(`"charge": "` + succeeded + `", "amount": 2.5`), 400, "parameter_invalid", "amount"},
		{"refund reason unknown", refund(`"charge": "` + succeeded + `", "reason": "changed_mind"`), 400, "parameter_invalid", "reason"},
		{"refund unknown field", refund(`"charge": "` + succeeded + `", "metadata": {"a": "b"}`), 400, "parameter_unknown", "metadata"},
		{"refund card number", refund(`"charge": "` + succeeded + `", "reason": "5555 5555 5555 4444"`), 400, "raw_card_data_rejected", ""},

		// What the charge allows.
		{"capture above authorized", post(capture(authorized), `{"amount": 1001}`), 400, "amount_too_large", "amount"},
		{"capture succeeded charge", post(capture(succeeded), `{}`), 400, "charge_not_capturable", ""},
		{"capture failed charge", post(capture(failed), ""), 400, "charge_not_capturable", ""},
		{"cancel succeeded charge", post(cancel(succeeded), ""), 400, "charge_not_cancelable", ""},
		{"cancel failed charge", post(cancel(failed), `{}`), 400, "charge_not_cancelable", ""},
		{"refund above captured", refund(`"charge": "` + succeeded + `", "amount": 1001`), 400, "amount_too_large", "amount"},
		{"refund of failed charge", refund(`"charge": "` + failed + `"`), 400, "amount_too_large", "amount"},
		{"refund of failed charge with amount", refund(`"charge": "` + failed + `", "amount": 100`), 400, "amount_too_large", "amount"},
		{"refund above authorized", refund(`"charge": "` + authorized + `", "amount": 1001`), 400, "amount_too_large", "amount"},
		{"refund before capture without amount", refund(`"charge": "` + authorized + `"`), 400, "parameter_missing", "amount"},

		// Ids that name nothing of this merchant's.
		{"capture another merchant's charge", post(capture(theirs), `{}`), 404, "resource_missing", "id"},
		{"cancel another merchant's charge", post(cancel(theirs), ""), 404, "resource_missing", "id"},
		{"capture unknown charge", post(capture(unknownCharge), `{}`), 404, "resource_missing", "id"},
		{"cancel malformed charge id", post(cancel("nope"), ""), 404, "resource_missing", "id"},
		{"capture a refund id", post(capture(unknownRefund), `{}`), 404, "resource_missing", "id"},
		{"refund another merchant's charge", refund(`"charge": "` + theirsSucceeded + `"`), 404, "resource_missing", "charge"},
		{"refund unknown charge", refund(`"charge": "` + unknownCharge + `", "amount": 100`), 404, "resource_missing", "charge"},
		{"unknown refund", req{"GET", "/v1/refunds/" + unknownRefund, tok, "", nil}, 404, "resource_missing", "id"},
		{"malformed refund id", req{"GET", "/v1/refunds/nope", tok, "", nil}, 404, "resource_missing", "id"},
		{"charge id as refund id", req{"GET", "/v1/refunds/" + succeeded, tok, "", nil}, 404, "resource_missing", "id"},

		// Queries.
		{"refund query parameter", req{"GET", "/v1/refunds/" + unknownRefund + "?expand=charge", tok, "", nil}, 400, "parameter_unknown", "expand"},
		{"list refunds of a malformed charge", req{"GET", "/v1/refunds?charge=nope", tok, "", nil}, 400, "parameter_invalid", "charge"},
		{"list refunds limit zero", req{"GET", "/v1/refunds?limit=0", tok, "", nil}, 400, "parameter_invalid", "limit"},
		{"list refunds starting after a charge", req{"GET", "/v1/refunds?starting_after=" + succeeded, tok, "", nil}, 400, "parameter_invalid", "starting_after"},
		{"list refunds unknown parameter", req{"GET", "/v1/refunds?status=pending", tok, "", nil}, 400, "parameter_unknown", "status"},
		{"list refunds charge twice", req{"GET", "/v1/refunds?charge=" + succeeded + "&charge=" + failed, tok, "", nil}, 400, "parameter_invalid", "charge"},
		{"balance query parameter", req{"GET", "/v1/balance?currency=usd", tok, "", nil}, 400, "parameter_unknown", "currency"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.do(tc.req.method, tc.req.path, tc.req.token, tc.req.body, tc.req.headers...)
			requireProblem(t, r, tc.status, tc.code, tc.param)
			require.NotEmpty(t, r.header.Get("X-Request-Id"))
			require.NotContains(t, string(r.body), "4242424242424242")
			require.NotContains(t, string(r.body), "5555 5555")
		})
	}

	// A refused request does not burn its key: the same key then works for a valid one.
	// (On a charge of its own: the cases above run once this function has returned.)
	spare := s.authorize(tok, 1000)["id"].(string)
	key := newKey()
	requireProblem(t, s.do("POST", capture(spare), tok, `{"amount": 1001}`, "Idempotency-Key", key), 400, "amount_too_large", "amount")
	requireProblem(t, s.do("POST", capture(theirs), tok, `{"amount": 1000}`, "Idempotency-Key", key), 404, "resource_missing", "id")
	r := s.do("POST", capture(spare), tok, `{"amount": 1000}`, "Idempotency-Key", key)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	require.Empty(t, r.header.Get("Idempotent-Replayed"))
}

func TestCaptureAnswerAndReplay(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_capture")
	authorized := s.authorize(tok, 2000)
	id := authorized["id"].(string)
	path := "/v1/charges/" + id + "/capture"

	key := newKey()
	first := s.do("POST", path, tok, `{"amount": 1500}`, "Idempotency-Key", key)
	require.Equal(t, http.StatusAccepted, first.status, "body: %s", first.body)
	require.Equal(t, "application/json", first.header.Get("Content-Type"))
	require.Empty(t, first.header.Get("Idempotent-Replayed"))
	c := first.json(t)
	require.Equal(t, id, c["id"])
	require.Equal(t, "charge", c["object"])
	require.Equal(t, "requires_capture", c["status"], "the charge as it was when the capture was accepted")
	require.EqualValues(t, 2000, c["amount"])
	require.Equal(t, authorized["created_at"], c["created_at"])

	// The same request, however the charge has moved on since: the stored answer.
	for range 3 {
		again := s.do("POST", path, tok, "{ \"amount\" :1500 }\n", "Idempotency-Key", key)
		require.Equal(t, http.StatusAccepted, again.status, "body: %s", again.body)
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		require.Equal(t, first.body, again.body)
	}
	// The same key with another amount, or on another route.
	r := s.do("POST", path, tok, `{"amount": 1400}`, "Idempotency-Key", key)
	requireProblem(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused", "")
	require.Contains(t, r.json(t)["detail"], "amount")
	r = s.do("POST", "/v1/charges/"+id+"/cancel", tok, `{}`, "Idempotency-Key", key)
	requireProblem(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused", "")
	require.Contains(t, r.json(t)["detail"], "path")

	// Without an amount, all that was authorized; the body may be missing altogether.
	other := s.authorize(tok, 700)["id"].(string)
	r = s.do("POST", "/v1/charges/"+other+"/capture", tok, "", "Idempotency-Key", newKey())
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	require.Equal(t, other, r.json(t)["id"])

	// Counted once each, replays apart.
	_, metrics := s.adminGet("/metrics")
	require.Contains(t, metrics, `billing_operations_accepted_total{operation="capture"} 2`)
	require.Contains(t, metrics, `billing_http_requests_total{method="POST",route="/v1/charges/:id/capture",status="202"} 5`)
}

func TestCancelAnswer(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_cancel")
	for name, tc := range map[string]struct{ body, contentType string }{
		"no body":                   {"", ""},
		"empty object":              {`{}`, "application/json"},
		"empty object with charset": {` { } `, "application/json; charset=utf-8"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id := s.authorize(tok, 900)["id"].(string)
			headers := []string{"Idempotency-Key", newKey()}
			if tc.contentType != "" {
				headers = append(headers, "Content-Type", tc.contentType)
			}
			first := s.do("POST", "/v1/charges/"+id+"/cancel", tok, tc.body, headers...)
			require.Equal(t, http.StatusAccepted, first.status, "body: %s", first.body)
			c := first.json(t)
			require.Equal(t, id, c["id"])
			require.Equal(t, "requires_capture", c["status"])

			again := s.do("POST", "/v1/charges/"+id+"/cancel", tok, tc.body, headers...)
			require.Equal(t, http.StatusAccepted, again.status, "body: %s", again.body)
			require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
			require.Equal(t, first.body, again.body)
		})
	}
}

func TestRefundAnswerAndRead(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	const m = "merchant_refunds"
	tok := s.token(m)
	other := s.token("merchant_refunds_other")
	c := s.settled(tok, 1000, "pm_card_visa", "succeeded")
	chargeID := c["id"].(string)

	key := newKey()
	body := `{"charge": "` + chargeID + `", "amount": 300, "reason": "requested_by_customer"}`
	first := s.do("POST", "/v1/refunds", tok, body, "Idempotency-Key", key)
	require.Equal(t, http.StatusAccepted, first.status, "body: %s", first.body)
	require.Empty(t, first.header.Get("Idempotent-Replayed"))
	r := first.json(t)
	id, _ := r["id"].(string)
	require.True(t, charge.ValidID(charge.PrefixRefund, id), "id %q", id)
	require.Equal(t, "/v1/refunds/"+id, first.header.Get("Location"))
	require.Equal(t, "refund", r["object"])
	require.Equal(t, chargeID, r["charge"])
	require.EqualValues(t, 300, r["amount"])
	require.Equal(t, "usd", r["currency"])
	require.Equal(t, "pending", r["status"])
	require.Equal(t, "requested_by_customer", r["reason"])
	v, ok := r["failure_code"]
	require.True(t, ok)
	require.Nil(t, v)
	created, err := time.Parse(time.RFC3339, r["created_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), created, time.Minute)
	require.True(t, strings.HasSuffix(r["created_at"].(string), "Z"))
	for _, hidden := range []string{"merchant", "updated_at", "version", "reference"} {
		require.NotContains(t, r, hidden)
	}

	// Readable at once: no 404 window between the 202 and the worker's write.
	got := s.do("GET", "/v1/refunds/"+id, tok, "")
	require.Equal(t, http.StatusOK, got.status, "body: %s", got.body)
	g := got.json(t)
	require.Equal(t, id, g["id"])
	require.Equal(t, "refund", g["object"])
	require.Equal(t, chargeID, g["charge"])
	require.EqualValues(t, 300, g["amount"])
	require.Equal(t, r["created_at"], g["created_at"])
	require.Contains(t, []any{"pending", "succeeded"}, g["status"])

	// Never to another merchant.
	requireProblem(t, s.do("GET", "/v1/refunds/"+id, other, ""), http.StatusNotFound, "resource_missing", "id")
	page, _ := listIDs(t, s.do("GET", "/v1/refunds", other, ""), "/v1/refunds")
	require.Empty(t, page)
	page, _ = listIDs(t, s.do("GET", "/v1/refunds?charge="+chargeID, other, ""), "/v1/refunds")
	require.Empty(t, page)

	// The same request replays; another under the same key is 422.
	again := s.do("POST", "/v1/refunds", tok, `{"reason":"requested_by_customer","amount":300,"charge":"`+chargeID+`"}`, "Idempotency-Key", key)
	require.Equal(t, http.StatusAccepted, again.status, "body: %s", again.body)
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	require.Equal(t, first.body, again.body)
	require.Equal(t, first.header.Get("Location"), again.header.Get("Location"))
	reused := s.do("POST", "/v1/refunds", tok, `{"charge": "`+chargeID+`", "amount": 200}`, "Idempotency-Key", key)
	requireProblem(t, reused, http.StatusUnprocessableEntity, "idempotency_key_reused", "")
	require.Contains(t, reused.json(t)["detail"], "amount")
	require.Contains(t, reused.json(t)["detail"], "reason")

	// Refunds in quick succession, each readable at once; the rest without an amount.
	ids := []string{id}
	for range 3 {
		c := s.settled(tok, 500, "pm_card_visa", "succeeded")
		a := s.do("POST", "/v1/refunds", tok, `{"charge": "`+c["id"].(string)+`"}`, "Idempotency-Key", newKey())
		require.Equal(t, http.StatusAccepted, a.status, "body: %s", a.body)
		ar := a.json(t)
		require.EqualValues(t, 500, ar["amount"], "the rest of what was captured")
		require.Nil(t, ar["reason"])
		g := s.do("GET", "/v1/refunds/"+ar["id"].(string), tok, "")
		require.Equal(t, http.StatusOK, g.status, "body: %s", g.body)
		require.Equal(t, ar["id"], g.json(t)["id"])
		ids = append(ids, ar["id"].(string))
	}

	// The list holds only this merchant's refunds, of the charge asked for.
	page, _ = listIDs(t, s.do("GET", "/v1/refunds?limit=100", tok, ""), "/v1/refunds")
	for _, p := range page {
		require.Contains(t, ids, p)
	}
	page, _ = listIDs(t, s.do("GET", "/v1/refunds?charge="+chargeID, tok, ""), "/v1/refunds")
	for _, p := range page {
		require.Equal(t, id, p)
	}
}

func TestBalanceWithoutLedger(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	r := s.do("GET", "/v1/balance", s.token("merchant_balance_empty", "charges:read"), "")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))
	require.JSONEq(t, `{"object": "balance", "available": [], "pending": []}`, string(r.body))
}
