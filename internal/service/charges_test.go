package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/config"
)

func TestChargeSettlesByPaymentMethod(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_outcomes")
	cases := []struct {
		pm, extra    string
		status       string
		failureCode  any
		captured     float64
		eventType    string
		deadLettered bool
	}{
		{pm: "pm_card_visa", status: "succeeded", failureCode: nil, captured: 1999, eventType: charge.EventChargeSucceeded},
		{pm: "pm_card_mastercard", status: "succeeded", failureCode: nil, captured: 1999, eventType: charge.EventChargeSucceeded},
		{pm: "pm_anything_else", status: "succeeded", failureCode: nil, captured: 1999, eventType: charge.EventChargeSucceeded},
		{pm: "pm_card_visa", extra: `"capture": false`, status: "requires_capture", failureCode: nil, captured: 0, eventType: charge.EventChargeAuthorized},
		{pm: "pm_card_chargeDeclined", status: "failed", failureCode: "card_declined", eventType: charge.EventChargeFailed},
		{pm: "pm_card_insufficientFunds", status: "failed", failureCode: "insufficient_funds", eventType: charge.EventChargeFailed},
		{pm: "pm_card_expired", status: "failed", failureCode: "expired_card", eventType: charge.EventChargeFailed},
		{pm: "pm_card_processingError", status: "failed", failureCode: "processing_error", eventType: charge.EventChargeFailed, deadLettered: true},
	}
	for _, tc := range cases {
		t.Run(tc.pm+"_"+tc.status, func(t *testing.T) {
			t.Parallel()
			var extra []string
			if tc.extra != "" {
				extra = append(extra, tc.extra)
			}
			created := s.create(tok, chargeBody(1999, tc.pm, extra...))
			require.Equal(t, "pending", created["status"])
			id := created["id"].(string)

			c := s.settle(tok, id)
			require.Equal(t, tc.status, c["status"])
			require.Equal(t, tc.failureCode, c["failure_code"])
			require.Equal(t, tc.captured, c["amount_captured"])
			if tc.failureCode != nil {
				require.NotEmpty(t, c["failure_message"])
			}

			events, _, err := s.store.ListEvents(context.Background(), "merchant_outcomes", tc.eventType, 100, "")
			require.NoError(t, err)
			var found *charge.Event
			for i := range events {
				if events[i].ChargeID == id {
					found = &events[i]
				}
			}
			require.NotNil(t, found, "no %s event for %s", tc.eventType, id)
			require.Equal(t, 1, found.Sequence)
			require.Equal(t, charge.Status(tc.status), found.Data.Object.Status)

			dead, err := s.store.DeadLetters(context.Background())
			require.NoError(t, err)
			isDead := false
			for _, d := range dead {
				isDead = isDead || strings.Contains(d.Subject, id)
			}
			require.Equal(t, tc.deadLettered, isDead)
		})
	}
}

func TestCreateChargeAnswer(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_answer")
	r := s.do("POST", "/v1/charges", tok,
		`{"amount": 1999, "currency": "USD", "payment_method": "pm_card_visa", "description": "Order 6735", "customer": "cus_42", "metadata": {"order_id": "6735"}}`,
		"Idempotency-Key", newKey())
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	require.NotEmpty(t, r.header.Get("X-Request-Id"))
	c := r.json(t)
	id := c["id"].(string)
	require.True(t, strings.HasPrefix(id, "ch_"), id)
	require.Equal(t, "/v1/charges/"+id, r.header.Get("Location"))
	require.Equal(t, "charge", c["object"])
	require.Equal(t, "usd", c["currency"])
	require.Equal(t, "pending", c["status"])
	require.Equal(t, true, c["capture"])
	require.Equal(t, "Order 6735", c["description"])
	require.Equal(t, "cus_42", c["customer"])
	require.Equal(t, map[string]any{"order_id": "6735"}, c["metadata"])
	for _, f := range []string{"failure_code", "failure_message"} {
		v, ok := c[f]
		require.True(t, ok, f)
		require.Nil(t, v, f)
	}
	created, err := time.Parse(time.RFC3339, c["created_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), created, time.Minute)
	require.True(t, strings.HasSuffix(c["created_at"].(string), "Z"))

	// The request id is the server's own, whatever the caller sends: a client's id used
	// in its place would let it forge the log lines of other requests.
	r = s.do("GET", "/v1/charges/"+id, tok, "", "X-Request-Id", "trace-123")
	require.Regexp(t, `^req_[0-9a-f]{24}$`, r.header.Get("X-Request-Id"))
}

// A charge is readable from the moment its 202 was sent: no GET after a 202 may be a 404.
func TestNoNotFoundWindowAfterAccept(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_window")
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				c := s.create(tok, chargeBody(500, "pm_card_visa"))
				r := s.do("GET", "/v1/charges/"+c["id"].(string), tok, "")
				require.Equal(t, http.StatusOK, r.status, "%s", r.body)
				require.Equal(t, c["id"], r.json(t)["id"])
			}
		}()
	}
	wg.Wait()
}

func TestOtherMerchantsGetNotFound(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	owner, other := s.token("merchant_owner"), s.token("merchant_other")
	c := s.create(owner, chargeBody(700, "pm_card_visa"))
	id := c["id"].(string)

	// Before and after the worker has stored it.
	r := s.do("GET", "/v1/charges/"+id, other, "")
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "resource_missing", r.json(t)["code"])
	s.settle(owner, id)
	r = s.do("GET", "/v1/charges/"+id, other, "")
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "resource_missing", r.json(t)["code"])
	r = s.do("GET", "/v1/charges/"+id+"?wait=1s", other, "")
	require.Equal(t, http.StatusNotFound, r.status)

	r = s.do("GET", "/v1/charges", other, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Empty(t, r.json(t)["data"])
}

func TestListChargesPaginates(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_pages")
	var ids []string
	for i := range 25 {
		pm := "pm_card_visa"
		if i%5 == 0 {
			pm = "pm_card_chargeDeclined"
		}
		ids = append(ids, s.create(tok, chargeBody(100+i, pm))["id"].(string))
	}
	for _, id := range ids {
		s.settle(tok, id)
	}

	var seen []string
	after := ""
	for page := 0; ; page++ {
		path := "/v1/charges?limit=10"
		if after != "" {
			path += "&starting_after=" + after
		}
		r := s.do("GET", path, tok, "")
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		l := r.json(t)
		require.Equal(t, "list", l["object"])
		data := l["data"].([]any)
		for _, d := range data {
			seen = append(seen, d.(map[string]any)["id"].(string))
		}
		if !l["has_more"].(bool) {
			require.Equal(t, 2, page)
			require.Len(t, data, 5)
			break
		}
		require.Len(t, data, 10)
		after = seen[len(seen)-1]
	}
	// Newest first: the reverse of creation order.
	require.Len(t, seen, 25)
	for i, id := range seen {
		require.Equal(t, ids[24-i], id)
	}

	r := s.do("GET", "/v1/charges?status=failed&limit=100", tok, "")
	require.Equal(t, http.StatusOK, r.status)
	failed := r.json(t)["data"].([]any)
	require.Len(t, failed, 5)
	for _, f := range failed {
		require.Equal(t, "failed", f.(map[string]any)["status"])
	}
	r = s.do("GET", "/v1/charges", tok, "")
	require.Len(t, r.json(t)["data"], 10, "default limit")
}

func TestWaitReturnsWhenSettled(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_wait")
	c := s.create(tok, chargeBody(900, "pm_card_visa"))
	start := time.Now()
	r := s.do("GET", "/v1/charges/"+c["id"].(string)+"?wait=30s", tok, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "succeeded", r.json(t)["status"])
	require.Less(t, time.Since(start), 20*time.Second)
}

// A long poll in flight when the ingest shuts down is answered at once with the charge
// as it is, not held until the grace ends and cut off: a rolling restart costs a
// merchant's poll one more round, not an error, and the shutdown is clean.
func TestShutdownAnswersLongPolls(t *testing.T) {
	t.Parallel()
	s := startSystem(t, func(c *config.Config) {
		// The charge stays pending: its processor call fails, and the next attempt is a
		// minute away.
		c.WorkerRetrySchedule = []time.Duration{time.Minute}
		c.ShutdownTimeout = 20 * time.Second
	})
	tok := s.token("merchant_drain")
	id := s.create(tok, chargeBody(900, "pm_card_processingError"))["id"].(string)

	type answer struct {
		status int
		body   []byte
		err    error
	}
	polled := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", s.base+"/v1/charges/"+id+"?wait=60s", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := s.client.Do(req)
		if err != nil {
			polled <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		polled <- answer{resp.StatusCode, body, err}
	}()
	waitFor(t, "the long poll to be in flight", 10*time.Second, func() bool {
		_, metrics := s.adminGet("/metrics")
		return strings.Contains(metrics, "billing_http_requests_in_flight 1\n")
	})

	start := time.Now()
	require.NoError(t, s.stop(), "a clean shutdown: no request cut off")
	require.Less(t, time.Since(start), 10*time.Second, "the poll did not hold the shutdown")
	a := <-polled
	require.NoError(t, a.err)
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	var c map[string]any
	require.NoError(t, json.Unmarshal(a.body, &c))
	require.Equal(t, "pending", c["status"])
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_idem")

	t.Run("same request replays byte for byte", func(t *testing.T) {
		key := newKey()
		first := s.do("POST", "/v1/charges", tok, `{"amount": 1500, "currency": "usd", "payment_method": "pm_card_visa", "metadata": {"a": "1", "b": "2"}}`, "Idempotency-Key", key)
		require.Equal(t, http.StatusAccepted, first.status)
		require.Empty(t, first.header.Get("Idempotent-Replayed"))
		// Same request, other key order and white space.
		again := s.do("POST", "/v1/charges", tok, `{ "metadata":{"b":"2","a":"1"},"payment_method":"pm_card_visa",
			"currency":"usd","amount":1500 }`, "Idempotency-Key", key)
		require.Equal(t, http.StatusAccepted, again.status, "%s", again.body)
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		require.Equal(t, first.body, again.body)
		require.Equal(t, first.header.Get("Location"), again.header.Get("Location"))
	})

	t.Run("different request is 422 naming the fields", func(t *testing.T) {
		key := newKey()
		require.Equal(t, http.StatusAccepted, s.do("POST", "/v1/charges", tok, chargeBody(1500, "pm_card_visa"), "Idempotency-Key", key).status)
		r := s.do("POST", "/v1/charges", tok, chargeBody(1600, "pm_card_visa", `"description": "x"`), "Idempotency-Key", key)
		require.Equal(t, http.StatusUnprocessableEntity, r.status)
		p := r.json(t)
		require.Equal(t, "idempotency_key_reused", p["code"])
		require.Contains(t, p["detail"], "amount")
		require.Contains(t, p["detail"], "description")
		require.NotContains(t, p["detail"], "currency")
	})

	t.Run("rejected requests do not burn the key", func(t *testing.T) {
		key := newKey()
		r := s.do("POST", "/v1/charges", tok, `{"amount": -1, "currency": "usd", "payment_method": "pm_card_visa"}`, "Idempotency-Key", key)
		require.Equal(t, http.StatusBadRequest, r.status)
		r = s.do("POST", "/v1/charges", s.token("merchant_idem", "charges:read"), chargeBody(100, "pm_card_visa"), "Idempotency-Key", key)
		require.Equal(t, http.StatusForbidden, r.status)
		r = s.do("POST", "/v1/charges", tok, chargeBody(100, "pm_card_visa"), "Idempotency-Key", key)
		require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
		require.Empty(t, r.header.Get("Idempotent-Replayed"))
	})

	t.Run("keys are scoped to the merchant", func(t *testing.T) {
		key := newKey()
		a := s.do("POST", "/v1/charges", tok, chargeBody(100, "pm_card_visa"), "Idempotency-Key", key)
		b := s.do("POST", "/v1/charges", s.token("merchant_idem_other"), chargeBody(100, "pm_card_visa"), "Idempotency-Key", key)
		require.Equal(t, http.StatusAccepted, a.status)
		require.Equal(t, http.StatusAccepted, b.status)
		require.Empty(t, b.header.Get("Idempotent-Replayed"))
		require.NotEqual(t, a.json(t)["id"], b.json(t)["id"])
	})
}

// 100 concurrent requests with one key: one charge, and every answer 202 or 409.
func TestIdempotencyUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := startSystem(t, func(c *config.Config) { c.RateBurst = 1000 })
	merchant := "merchant_concurrent"
	tok := s.token(merchant)
	key := newKey()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
		ids   = map[string]bool{}
	)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.do("POST", "/v1/charges", tok, chargeBody(4242, "pm_card_visa"), "Idempotency-Key", key)
			mu.Lock()
			defer mu.Unlock()
			codes[r.status]++
			if r.status == http.StatusAccepted {
				ids[r.json(t)["id"].(string)] = true
			}
		}()
	}
	wg.Wait()
	for code := range codes {
		require.Contains(t, []int{http.StatusAccepted, http.StatusConflict}, code, "codes: %v", codes)
	}
	require.Len(t, ids, 1, "codes: %v", codes)
	for id := range ids {
		s.settle(tok, id)
	}
	r := s.do("GET", "/v1/charges?limit=100", tok, "")
	require.Len(t, r.json(t)["data"], 1)
	t.Logf("answers: %v", codes)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	s := startSystem(t, func(c *config.Config) { c.RateLimit = 0.5; c.RateBurst = 2 })
	tok := s.token("merchant_limited")
	key := newKey()
	require.Equal(t, http.StatusOK, s.do("GET", "/v1/charges", tok, "").status)
	require.Equal(t, http.StatusOK, s.do("GET", "/v1/charges", tok, "").status)
	r := s.do("POST", "/v1/charges", tok, chargeBody(100, "pm_card_visa"), "Idempotency-Key", key)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "rate_limited", r.json(t)["code"])
	require.Equal(t, "2", r.header.Get("Retry-After"))
	// Another merchant has its own bucket.
	require.Equal(t, http.StatusOK, s.do("GET", "/v1/charges", s.token("merchant_unlimited"), "").status)
	// After the wait, the key was not burned by the 429.
	require.Eventually(t, func() bool {
		r = s.do("POST", "/v1/charges", tok, chargeBody(100, "pm_card_visa"), "Idempotency-Key", key)
		return r.status != http.StatusTooManyRequests
	}, 10*time.Second, 250*time.Millisecond)
	require.Equal(t, http.StatusAccepted, r.status)
	require.Empty(t, r.header.Get("Idempotent-Replayed"))
}

var _ = fmt.Sprint
