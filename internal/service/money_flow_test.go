package service_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// until polls GET path until cond holds for its JSON, and returns it.
func (s *system) until(token, path string, cond func(map[string]any) bool) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.do("GET", path, token, "")
		require.Equal(s.t, http.StatusOK, r.status, "body: %s", r.body)
		v := r.json(s.t)
		if cond(v) {
			return v
		}
		require.True(s.t, time.Now().Before(deadline), "%s never got there: %s", path, r.body)
		time.Sleep(20 * time.Millisecond)
	}
}

// The money movements through the API, the queue and a worker: authorize 1,000, capture
// 600, refund 200 and 300, refuse a refund of 200 (only 100 remain) and a cancel of the
// captured charge; the balance is 100 available, nothing pending; the charge's events
// are numbered 1 to 4.
func TestMoneyFlowThroughTheAPI(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("m_flow")
	id := s.authorize(tok, 1000)["id"].(string)
	bal := s.do("GET", "/v1/balance", tok, "")
	require.JSONEq(t, `{"object":"balance","available":[{"amount":0,"currency":"usd"}],"pending":[{"amount":1000,"currency":"usd"}]}`, string(bal.body))

	r := s.do("POST", "/v1/charges/"+id+"/capture", tok, `{"amount": 600}`, "Idempotency-Key", newKey())
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	s.until(tok, "/v1/charges/"+id, func(c map[string]any) bool { return c["status"] == "succeeded" })

	var refunds []string
	for _, amount := range []int{200, 300} {
		r := s.do("POST", "/v1/refunds", tok, fmt.Sprintf(`{"charge": %q, "amount": %d}`, id, amount), "Idempotency-Key", newKey())
		require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
		refunds = append(refunds, r.json(t)["id"].(string))
	}
	for _, rid := range refunds {
		s.until(tok, "/v1/refunds/"+rid, func(r map[string]any) bool { return r["status"] == "succeeded" })
	}
	c := s.until(tok, "/v1/charges/"+id, func(c map[string]any) bool { return c["amount_refunded"] == 500.0 })
	require.Equal(t, 600.0, c["amount_captured"])

	r = s.do("POST", "/v1/refunds", tok, fmt.Sprintf(`{"charge": %q, "amount": 200}`, id), "Idempotency-Key", newKey())
	requireProblem(t, r, http.StatusBadRequest, "amount_too_large", "amount")
	r = s.do("POST", "/v1/charges/"+id+"/cancel", tok, "", "Idempotency-Key", newKey())
	requireProblem(t, r, http.StatusBadRequest, "charge_not_cancelable", "")

	bal = s.do("GET", "/v1/balance", tok, "")
	require.JSONEq(t, `{"object":"balance","available":[{"amount":100,"currency":"usd"}],"pending":[{"amount":0,"currency":"usd"}]}`, string(bal.body))
	list := s.do("GET", "/v1/refunds?charge="+id, tok, "")
	ids, more := listIDs(t, list, "/v1/refunds")
	require.False(t, more)
	require.ElementsMatch(t, refunds, ids)

	events := s.do("GET", "/v1/events?limit=10", tok, "").json(t)["data"].([]any)
	seqs := make([]string, len(events))
	for i, e := range events {
		ev := e.(map[string]any)
		seqs[i] = fmt.Sprintf("%v:%v", ev["sequence"], ev["type"])
	}
	slices.Sort(seqs)
	require.Equal(t, []string{"1:charge.authorized", "2:charge.captured", "3:charge.refunded", "4:charge.refunded"}, seqs)
}
