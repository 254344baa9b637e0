package service_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/natstest"
)

func (s *system) adminGet(path string) (int, string) {
	s.t.Helper()
	resp, err := s.client.Get(s.admin + path)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp.StatusCode, string(body)
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	code, _ := s.adminGet("/livez")
	require.Equal(t, http.StatusOK, code)
	code, _ = s.adminGet("/readyz")
	require.Equal(t, http.StatusOK, code)

	tok := s.token("merchant_metrics")
	s.settle(tok, s.create(tok, chargeBody(100, "pm_card_visa"))["id"].(string))
	code, metrics := s.adminGet("/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, metrics, `billing_http_requests_total{method="POST",route="/v1/charges",status="202"} 1`)
	require.Contains(t, metrics, "billing_charges_accepted_total 1")
	require.Contains(t, metrics, "billing_http_request_duration_seconds_bucket")
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "billing_") {
			require.NotContains(t, line, "merchant_metrics", "no merchant label")
			require.NotContains(t, line, "ch_", "no charge label")
		}
	}
}

// When the queue is down the API answers 503 with Retry-After, accepts nothing, and the
// idempotency key stays free; readiness follows the connection.
func TestQueueOutage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ns, err := natstest.StartServer(natstest.ServerOptions{Port: -1, StoreDir: dir})
	require.NoError(t, err)
	port := ns.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })

	s := startSystem(t, func(c *config.Config) { c.NATSURL = ns.ClientURL() })
	tok := s.token("merchant_outage")
	before := s.create(tok, chargeBody(100, "pm_card_visa"))

	ns.Shutdown()
	ns.WaitForShutdown()
	key := newKey()
	r := s.do("POST", "/v1/charges", tok, chargeBody(200, "pm_card_visa"), "Idempotency-Key", key)
	require.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.body)
	require.Equal(t, "unavailable", r.json(t)["code"])
	require.NotEmpty(t, r.header.Get("Retry-After"))
	require.NotContains(t, string(r.body), "nats")
	require.Eventually(t, func() bool { code, _ := s.adminGet("/readyz"); return code == http.StatusServiceUnavailable },
		10*time.Second, 50*time.Millisecond)

	ns, err = natstest.StartServer(natstest.ServerOptions{Port: port, StoreDir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	require.Eventually(t, func() bool { code, _ := s.adminGet("/readyz"); return code == http.StatusOK },
		20*time.Second, 50*time.Millisecond)

	r = s.do("POST", "/v1/charges", tok, chargeBody(200, "pm_card_visa"), "Idempotency-Key", key)
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	require.Empty(t, r.header.Get("Idempotent-Replayed"), "the 503 did not store the key")
	// What was accepted before the outage survived it and settles.
	require.Equal(t, "succeeded", s.settle(tok, before["id"].(string))["status"])
	require.Equal(t, "succeeded", s.settle(tok, r.json(t)["id"].(string))["status"])
}
