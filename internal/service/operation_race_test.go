package service_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A capture and a cancel of one charge sent together, with keys of their own: exactly one
// is accepted (202), the other is 409 operation_in_progress with Retry-After (or, when the
// first settled before the second read the charge, the 400 of a charge no longer
// capturable or cancelable), and the charge ends as the accepted one says, with its event
// and no other. Many times over, on
// many charges at once, so that the two requests meet in every order.
func TestCaptureAndCancelRace(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_race")
	const trials = 24
	ids := make([]string, trials)
	for i := range ids {
		ids[i] = s.create(tok, chargeBody(1000+i, "pm_card_visa", `"capture": false`))["id"].(string)
	}
	for _, id := range ids {
		require.Equal(t, "requires_capture", s.settle(tok, id)["status"])
	}

	ops := []string{"capture", "cancel"}
	answers := make([][2]response, trials)
	var wg sync.WaitGroup
	for i, id := range ids {
		for j, op := range ops {
			wg.Go(func() {
				answers[i][j] = s.do("POST", "/v1/charges/"+id+"/"+op, tok, "", "Idempotency-Key", newKey())
			})
		}
	}
	wg.Wait()

	want := map[string]struct{ status, event string }{
		"capture": {"succeeded", "charge.captured"},
		"cancel":  {"canceled", "charge.canceled"},
	}
	// The one that loses meets the other in progress (409), or, if the other settled
	// before it read the charge (a fast worker), the charge as the other left it (400).
	refusal := map[string]string{"capture": "charge_not_capturable", "cancel": "charge_not_cancelable"}
	conflicts := 0
	for i, id := range ids {
		var won string
		for j, r := range answers[i] {
			switch r.status {
			case http.StatusAccepted:
				require.Empty(t, won, "charge %s: both the capture and the cancel were accepted", id)
				won = ops[j]
			case http.StatusConflict:
				require.Equal(t, "operation_in_progress", r.json(t)["code"], "%s", r.body)
				require.Equal(t, "1", r.header.Get("Retry-After"))
				conflicts++
			case http.StatusBadRequest:
				require.Equal(t, refusal[ops[j]], r.json(t)["code"], "%s", r.body)
			default:
				t.Fatalf("charge %s: %s answered %d: %s", id, ops[j], r.status, r.body)
			}
		}
		require.NotEmpty(t, won, "charge %s: neither was accepted", id)

		c := s.settleOperation(tok, id)
		require.Equal(t, want[won].status, c["status"], "charge %s: the %s was accepted", id, won)
		var types []string
		for _, e := range s.eventsOf(tok, id) {
			types = append(types, e["type"].(string))
		}
		require.ElementsMatch(t, []string{"charge.authorized", want[won].event}, types, "charge %s", id)
	}
	require.Positive(t, conflicts, "no trial raced: every loser came after its winner had settled")
	t.Logf("%d of %d trials raced (409); the others' losers came after the winner settled (400)", conflicts, trials)
}

// settleOperation waits until the charge is no longer requires_capture and returns it.
func (s *system) settleOperation(token, id string) map[string]any {
	s.t.Helper()
	var c map[string]any
	require.Eventually(s.t, func() bool {
		r := s.do("GET", "/v1/charges/"+id, token, "")
		require.Equal(s.t, http.StatusOK, r.status, "%s", r.body)
		c = r.json(s.t)
		return c["status"] != "requires_capture"
	}, 30*time.Second, 20*time.Millisecond, "charge %s still requires_capture", id)
	return c
}

// eventsOf returns the events of one charge, newest first.
func (s *system) eventsOf(token, id string) []map[string]any {
	s.t.Helper()
	var out []map[string]any
	after := ""
	for {
		path := "/v1/events?limit=100"
		if after != "" {
			path += "&starting_after=" + after
		}
		r := s.do("GET", path, token, "")
		require.Equal(s.t, http.StatusOK, r.status, "%s", r.body)
		page := r.json(s.t)
		data := page["data"].([]any)
		for _, e := range data {
			ev := e.(map[string]any)
			after = ev["id"].(string)
			if ev["data"].(map[string]any)["object"].(map[string]any)["id"] == id {
				out = append(out, ev)
			}
		}
		if page["has_more"] != true {
			return out
		}
	}
}
