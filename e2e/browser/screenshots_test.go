package browser_test

import (
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/client"
)

// screenshots is where TestScreenshots writes its PNGs; `make screenshots` sets it to
// docs/screenshots. Without it, they go to a temporary directory: the test still shows
// every page, and fails on a page that does not render or breaks the CSP.
var screenshots = flag.String("screenshots", "", "directory to write the dashboard's screenshots to")

// TestScreenshots seeds a little of everything (charges in each status, a partial
// refund, an endpoint that answers and one that fails) and takes a picture of each page:
// 1280 pixels wide, and the charge page 390 wide as on a phone.
func TestScreenshots(t *testing.T) {
	t.Parallel()
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))

	s := startSystem(t)
	c := s.client("merchant_demo")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ok := newReceiver(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	okEndpoint, err := c.CreateWebhookEndpoint(ctx, client.WebhookEndpointParams{
		URL: ok.URL + "/hooks/billing", EnabledEvents: []string{client.EventAll}, Description: "Order service"})
	require.NoError(t, err)
	_, err = c.CreateWebhookEndpoint(ctx, client.WebhookEndpointParams{
		URL: failing.URL + "/webhooks", EnabledEvents: []string{"charge.failed", "charge.refunded"}, Description: "Accounting (down)"})
	require.NoError(t, err)

	create := func(p client.ChargeParams) *client.Charge {
		t.Helper()
		ch, err := c.CreateCharge(ctx, p)
		require.NoError(t, err)
		ch, err = c.WaitCharge(ctx, ch.ID, 25*time.Second)
		require.NoError(t, err)
		return ch
	}
	create(client.ChargeParams{Amount: 1999, Currency: "usd", PaymentMethod: "pm_card_visa",
		Customer: "cus_ada", Description: "Order 6735"})
	declined := create(client.ChargeParams{Amount: 500, Currency: "usd", PaymentMethod: "pm_card_chargeDeclined",
		Customer: "cus_grace", Description: "Order 6736"})
	auth := create(client.ChargeParams{Amount: 12000, Currency: "eur", PaymentMethod: "pm_card_mastercard",
		Capture: new(false), Customer: "cus_edsger", Description: "Hotel deposit"})
	voided := create(client.ChargeParams{Amount: 3000, Currency: "usd", PaymentMethod: "pm_card_visa",
		Capture: new(false), Description: "Reservation"})
	_, err = c.CancelCharge(ctx, voided.ID)
	require.NoError(t, err)
	refunded := create(client.ChargeParams{Amount: 5000, Currency: "usd", PaymentMethod: "pm_card_visa",
		Customer: "cus_barbara", Description: "Order 6737", Metadata: map[string]string{"order_id": "6737"}})
	_, err = c.CreateRefund(ctx, client.RefundParams{Charge: refunded.ID, Amount: 1500, Reason: "requested_by_customer"})
	require.NoError(t, err)
	require.Equal(t, client.StatusFailed, declined.Status)
	require.Equal(t, client.StatusRequiresCapture, auth.Status)

	tb := newTab(t, 60*time.Second)
	shoot := func(name string) {
		t.Helper()
		png := run(tb, "taking "+name, chromedp.FullScreenshot(100))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
	}
	tb.do("the sign-in page", chromedp.Navigate(s.base+"/dashboard/sign-in"), chromedp.WaitVisible(chromedp.ID("sign-in-form")))
	shoot("sign-in.png")
	signIn(tb, s.base, s.tokenWith("merchant_demo", "charges:write", "charges:read", "events:read", "webhooks:manage", "ops:read", "ops:write"), "merchant_demo")

	// The refund settles, and the refunded charge's events are delivered (both to the
	// endpoint that answers, the refund to the one that fails), after the API's 202s.
	page := s.base + "/dashboard/charges/" + refunded.ID
	reloadUntil(tb, page, `#charge-refunds tr[data-status="succeeded"]`)
	reloadUntil(tb, page, `#charge-deliveries tbody tr[data-delivery-id]:nth-child(3)`)

	for _, p := range []struct{ path, ready, file string }{
		{"/dashboard/charges", "charges-table", "charges.png"},
		{"/dashboard/charges/" + refunded.ID, "charge-deliveries", "charge.png"},
		{"/dashboard/balance", "balance-table", "balance.png"},
		{"/dashboard/webhooks", "endpoints-table", "webhooks.png"},
		{"/dashboard/webhooks/" + okEndpoint.ID, "deliveries-table", "webhook.png"},
		{"/dashboard/events", "events-table", "events.png"},
		{"/dashboard/ops", "dead-letters", "ops.png"},
	} {
		tb.do("opening "+p.path, chromedp.Navigate(s.base+p.path), chromedp.WaitVisible(chromedp.ID(p.ready)))
		shoot(p.file)
	}
	tb.do("a phone's width",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("charge-status")),
	)
	shoot("charge-phone.png")
	t.Logf("screenshots in %s", dir)
}
