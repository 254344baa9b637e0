package e2e

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/webhooksig"
)

// hookReceiver is the merchant's webhook endpoint: it verifies every delivery with the
// public verification package, records the events by charge, and fails a few first
// deliveries with 500 so that retries happen while workers die.
type hookReceiver struct {
	*httptest.Server
	mu         sync.Mutex
	verifier   *webhooksig.Verifier
	byCharge   map[string]deliveredEvent // the latest delivered event of each charge
	delivered  map[string]deliveredEvent // every event delivered, by id
	seen       map[string]int            // deliveries per webhook-id
	badSig     int
	failed500  int
	deliveries int
	// sick, while set, is how the receiver fails every delivery: sickHang holds it
	// unanswered until healed, sickFail answers 500. heal ends it.
	sick   sickness
	healed chan struct{}
	// lastNew is when an event was last delivered for the first time.
	lastNew time.Time
}

// sickness is how a receiver fails every delivery until healed.
type sickness int

const (
	healthy sickness = iota
	sickHang
	sickFail
)

// startSickReceiver starts a receiver that fails every delivery as s says until heal.
func startSickReceiver(t *testing.T, s sickness) *hookReceiver {
	t.Helper()
	h := startHookReceiver(t)
	h.sick, h.healed = s, make(chan struct{})
	t.Cleanup(h.heal) // a hung handler must let the server close
	return h
}

// heal makes the receiver answer as a healthy one does.
func (h *hookReceiver) heal() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sick != healthy {
		h.sick = healthy
		close(h.healed)
	}
}

type deliveredEvent struct {
	ID, Type, Status string
}

func startHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{byCharge: map[string]deliveredEvent{}, delivered: map[string]deliveredEvent{}, seen: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	switch h.sick {
	case sickHang:
		healed := h.healed
		h.mu.Unlock()
		select { // held past the sender's timeout, or until healed
		case <-healed:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case sickFail:
		h.deliveries++
		h.mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	defer h.mu.Unlock()
	h.deliveries++
	if h.verifier == nil || h.verifier.Verify(r.Header, body) != nil {
		h.badSig++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := r.Header.Get("webhook-id")
	if h.seen[id] == 0 && rand.IntN(100) < 3 {
		h.seen[id]++ // counted, but answered with a failure: it must come again
		h.failed500++
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	h.seen[id]++
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Object struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != id {
		h.badSig++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.byCharge[ev.Data.Object.ID] = deliveredEvent{ID: ev.ID, Type: ev.Type, Status: ev.Data.Object.Status}
	if _, ok := h.delivered[ev.ID]; !ok {
		h.lastNew = time.Now()
	}
	h.delivered[ev.ID] = h.byCharge[ev.Data.Object.ID]
	w.WriteHeader(http.StatusNoContent)
}

// register subscribes the receiver to every event of the test's merchant.
func (h *hookReceiver) register(t *testing.T, s *system) {
	t.Helper()
	code, body, _, err := s.do(t.Context(), "POST", "/v1/webhook_endpoints",
		[]byte(`{"url": "`+h.URL+`/hooks", "enabled_events": ["*"]}`), "Idempotency-Key", "e2e-endpoint-"+h.URL)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, code, "%s", body)
	var e struct {
		Secret string `json:"secret"`
	}
	require.NoError(t, json.Unmarshal(body, &e))
	inPlay.plant("a webhook endpoint's secret", e.Secret)
	v, err := webhooksig.NewVerifier(e.Secret)
	require.NoError(t, err)
	h.mu.Lock()
	h.verifier = v
	h.mu.Unlock()
}

// await waits until an event of every charge in want arrived, and returns what did.
func (h *hookReceiver) await(ctx context.Context, want map[string]*order) map[string]deliveredEvent {
	for {
		h.mu.Lock()
		n := 0
		for id := range want {
			if _, ok := h.byCharge[id]; ok {
				n++
			}
		}
		got := make(map[string]deliveredEvent, len(h.byCharge))
		for k, v := range h.byCharge {
			got[k] = v
		}
		h.mu.Unlock()
		if n == len(want) {
			return got
		}
		select {
		case <-ctx.Done():
			return got
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// awaitEvents waits until every event in ids was delivered, and returns those that were
// not when ctx ended.
func (h *hookReceiver) awaitEvents(ctx context.Context, ids []string) []string {
	for {
		h.mu.Lock()
		var missing []string
		for _, id := range ids {
			if _, ok := h.delivered[id]; !ok {
				missing = append(missing, id)
			}
		}
		h.mu.Unlock()
		if len(missing) == 0 || ctx.Err() != nil {
			return missing
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
