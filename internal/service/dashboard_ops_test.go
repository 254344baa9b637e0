package service_test

import (
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/service"
)

// The operator page's settle rate, disabled endpoints and last reconciliation, on the
// real system.
func TestDashboardOps(t *testing.T) {
	t.Parallel()
	s := startSystemLogging(t, nil, slog.New(slog.DiscardHandler), service.WithSettleSampling(100*time.Millisecond))
	tok := s.token("merchant_ops")
	ops := s.browser()
	require.Equal(t, http.StatusSeeOther, ops.signIn(s.token("operator", "ops:read")).status)

	t.Run("settle rate", func(t *testing.T) {
		// Settle charges until the rate, over the last samples, shows them.
		rate := regexp.MustCompile(`id="settle-rate" data-per-second="([0-9.]+)"`)
		deadline := time.Now().Add(30 * time.Second)
		for {
			s.settle(tok, s.create(tok, chargeBody(100, "pm_card_visa"))["id"].(string))
			p := ops.get("/dashboard/ops")
			requirePage(t, p, http.StatusOK)
			if m := rate.FindStringSubmatch(p.body); m != nil {
				perSecond, err := strconv.ParseFloat(m[1], 64)
				require.NoError(t, err)
				if perSecond > 0 {
					break
				}
			} else {
				require.Contains(t, p.body, `id="settle-rate" data-measuring="true"`)
			}
			require.True(t, time.Now().Before(deadline), "no settle rate: %s", p.body)
		}
	})

	t.Run("disabled endpoints of every merchant", func(t *testing.T) {
		byMerchant := s.createEndpoint(tok, `{"url": "https://93.184.216.34/hooks?token=sekrit", "enabled_events": ["*"]}`)["id"].(string)
		r := s.do("PATCH", "/v1/webhook_endpoints/"+byMerchant, tok, `{"status": "disabled"}`)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		other := s.token("merchant_ops_other")
		failing := s.createEndpoint(other, `{"url": "https://93.184.216.35:8443/other", "enabled_events": ["*"]}`)["id"].(string)
		since := time.Now().Add(-72 * time.Hour).UTC().Truncate(time.Second)
		require.NoError(t, s.store.SetEndpointHealth(t.Context(), failing, &since, "failing for 3 days"))
		enabled := s.createEndpoint(other, `{"url": "https://93.184.216.36/on", "enabled_events": ["*"]}`)["id"].(string)

		p := ops.get("/dashboard/ops")
		requirePage(t, p, http.StatusOK)
		table := p.body[strings.Index(p.body, `id="disabled-endpoints"`):]
		table = table[:strings.Index(table, "</table>")]
		rows := regexp.MustCompile(`data-endpoint-id="([^"]+)"`).FindAllStringSubmatch(table, -1)
		require.Len(t, rows, 2, table)
		require.Equal(t, failing, rows[0][1], "newest first")
		require.Equal(t, byMerchant, rows[1][1])
		require.NotContains(t, table, enabled)
		require.Contains(t, table, "merchant_ops_other")
		require.Contains(t, table, "merchant_ops<")
		require.Contains(t, table, "93.184.216.35:8443")
		require.Contains(t, table, "failing for 3 days")
		require.Contains(t, table, since.Format("2006-01-02 15:04:05 UTC"))
		require.Contains(t, table, "disabled by the merchant")
		require.Contains(t, table, "93.184.216.34")
		require.NotContains(t, p.body, "sekrit", "the host only: a URL may hold a token")
		require.NotContains(t, p.body, "/hooks")
	})

	t.Run("last reconciliation", func(t *testing.T) {
		require.Contains(t, ops.get("/dashboard/ops").body, `id="reconciliation-never"`)

		// A charge whose view is behind its log: one disagreement.
		id := s.create(tok, chargeBody(300, "pm_card_visa"))["id"].(string)
		s.settle(tok, id)
		c, err := s.store.GetCharge(t.Context(), "merchant_ops", id)
		require.NoError(t, err)
		c.AmountRefunded, c.Version = 1, c.Version+1
		require.NoError(t, s.store.SaveCharges(t.Context(), []charge.Charge{c}))

		rep, err := service.Reconcile(t.Context(), s.cfg, slog.New(slog.DiscardHandler), false, io.Discard)
		require.NoError(t, err)
		require.NotEmpty(t, rep.Findings)

		p := ops.get("/dashboard/ops")
		requirePage(t, p, http.StatusOK)
		require.NotContains(t, p.body, `id="reconciliation-never"`)
		require.Contains(t, p.body, `<dd id="reconciliation-charges">`+strconv.Itoa(rep.Charges)+`</dd>`)
		require.Contains(t, p.body, `data-findings="`+strconv.Itoa(len(rep.Findings))+`"`)
		require.Contains(t, p.body, `<dd id="reconciliation-processor">no</dd>`)
		require.Contains(t, p.body, id+": ")
	})
}
