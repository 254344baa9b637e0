package service_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
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

	t.Run("a dead letter replayed from the page", func(t *testing.T) {
		// A command given up on, recorded as a worker records it.
		amount, cur, pm := int64(700), "usd", "pm_card_visa"
		id := charge.NewID(charge.PrefixCharge)
		params := charge.CreateParams{Amount: &amount, Currency: &cur, PaymentMethod: &pm}
		c := params.Charge(id, "merchant_ops", time.Now)
		data, err := json.Marshal(charge.Command{Type: charge.CommandCreate, Merchant: "merchant_ops", ChargeID: id, AcceptedAt: c.CreatedAt, Charge: &c})
		require.NoError(t, err)
		letter := charge.DeadLetter{ID: "charges." + id + ".create", Subject: "charges." + id + ".create", Data: data,
			Reason: "given up", Attempts: 9, At: time.Now().UTC().Truncate(time.Millisecond)}
		require.NoError(t, s.store.InsertDeadLetters(t.Context(), []charge.DeadLetter{letter}))

		reader := ops.get("/dashboard/ops")
		require.Contains(t, reader.body, `data-dead-letter-id="`+letter.ID+`"`)
		require.NotContains(t, reader.body, `data-testid="replay"`, "ops:read alone cannot replay")

		writer := s.browser()
		require.Equal(t, http.StatusSeeOther, writer.signIn(s.token("operator", "ops:read", "ops:write")).status)
		p := writer.get("/dashboard/ops")
		csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(p.body)
		require.NotNil(t, csrf, p.body)
		replay := writer.do("POST", "/dashboard/ops/dead-letters/replay", url.Values{"csrf_token": {csrf[1]}, "id": {letter.ID}})
		require.Equal(t, http.StatusSeeOther, replay.status, replay.body)
		require.NotContains(t, writer.get("/dashboard/ops").body, `data-dead-letter-id="`+letter.ID+`"`, "gone once replayed")
		// The worker settles the replayed command's charge.
		settled := s.settle(s.token("merchant_ops"), id)
		require.Equal(t, "succeeded", settled["status"])
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
