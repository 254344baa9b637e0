package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/config"
)

// heldWait is a GET ?wait= in flight; done receives its answer (or error) once.
type heldWait struct {
	cancel context.CancelFunc
	done   chan waitResult
}

type waitResult struct {
	status int
	body   []byte
	err    error
}

// startWait sends GET /v1/charges/{id}?wait=30s without waiting for its answer.
func (s *system) startWait(client *http.Client, token, id string) heldWait {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+"/v1/charges/"+id+"?wait=30s", nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	h := heldWait{cancel: cancel, done: make(chan waitResult, 1)}
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			h.done <- waitResult{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		h.done <- waitResult{status: resp.StatusCode, body: body, err: err}
	}()
	return h
}

// inFlight reads the ingest's billing_http_requests_in_flight.
func (s *system) inFlight() int {
	s.t.Helper()
	resp, err := s.client.Get(s.admin + "/metrics")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "billing_http_requests_in_flight "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(s.t, err)
			return int(f)
		}
	}
	require.NoError(s.t, sc.Err())
	s.t.Fatal("no billing_http_requests_in_flight in /metrics")
	return 0
}

// awaitInFlight polls the metric until it reads n.
func (s *system) awaitInFlight(n int) {
	s.t.Helper()
	pollUntil(s.t, 30*time.Second, "billing_http_requests_in_flight "+strconv.Itoa(n), func() bool { return s.inFlight() == n })
}

// At most 20 ?wait= requests of one merchant are held; beyond that a wait answers at
// once with the charge as it is, while other merchants' waits are still held.
func TestWaitsPerMerchantAreBounded(t *testing.T) {
	t.Parallel()
	// A worker without the charges role: accepted charges stay pending.
	s := startSystem(t, func(c *config.Config) { c.WorkerRoles = []string{config.RoleWebhooks} })
	tokA, tokB := s.token("merchant_waits_a"), s.token("merchant_waits_b")
	chA := s.create(tokA, chargeBody(1000, "pm_card_visa"))["id"].(string)
	chB := s.create(tokB, chargeBody(1000, "pm_card_visa"))["id"].(string)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	const limit = 20 // docs/api.md
	require.Equal(t, 0, s.inFlight())

	held := make([]heldWait, limit)
	for i := range held {
		held[i] = s.startWait(client, tokA, chA)
	}
	defer func() {
		for _, h := range held {
			h.cancel()
		}
	}()
	s.awaitInFlight(limit)
	for i, h := range held {
		select {
		case r := <-h.done:
			t.Fatalf("wait %d answered while it should be held: %d %s %v", i, r.status, r.body, r.err)
		default:
		}
	}

	// The 21st of A answers at once, with the charge as it is.
	extra := s.startWait(client, tokA, chA)
	defer extra.cancel()
	select {
	case r := <-extra.done:
		require.NoError(t, r.err)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		var c map[string]any
		require.NoError(t, json.Unmarshal(r.body, &c))
		require.Equal(t, chA, c["id"])
		require.Equal(t, "pending", c["status"])
	case <-time.After(2 * time.Second):
		t.Fatalf("wait %d of merchant A was held", limit+1)
	}
	require.Equal(t, limit, s.inFlight())

	// B's is held all the same.
	b := s.startWait(client, tokB, chB)
	s.awaitInFlight(limit + 1)
	select {
	case r := <-b.done:
		t.Fatalf("merchant B's wait answered at once: %d %s %v", r.status, r.body, r.err)
	case <-time.After(time.Second):
	}
	b.cancel()
	require.Error(t, (<-b.done).err)

	// Released, A's places are free again.
	for _, h := range held {
		h.cancel()
	}
	for _, h := range held {
		require.ErrorIs(t, (<-h.done).err, context.Canceled)
	}
	s.awaitInFlight(0)
	again := s.startWait(client, tokA, chA)
	defer again.cancel()
	s.awaitInFlight(1)
	select {
	case r := <-again.done:
		t.Fatalf("a new wait of A answered at once after the others were released: %d %s %v", r.status, r.body, r.err)
	case <-time.After(time.Second):
	}
	again.cancel()
	require.Error(t, (<-again.done).err)
	s.awaitInFlight(0)

	// And the charge is still pending: nothing above answered by settling it.
	r := s.do("GET", "/v1/charges/"+chA, tokA, "")
	require.Equal(t, "pending", r.json(t)["status"])
}
