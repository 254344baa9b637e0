package browser_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/client"
)

// pageTimeout bounds everything one test does in its tab.
const pageTimeout = 45 * time.Second

// signIn pastes token into the sign-in form and waits for the dashboard to greet merchant.
func signIn(tb *tab, base, token, merchant string) {
	tb.t.Helper()
	tb.do("signing in",
		chromedp.Navigate(base+"/dashboard"),
		chromedp.WaitVisible(chromedp.ID("sign-in-form")),
		chromedp.SetValue(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS(`[data-testid="sign-in"]`)),
		chromedp.WaitVisible(chromedp.ID("session-merchant")),
	)
	require.Equal(tb.t, merchant, tb.text("#session-merchant"))
}

func TestSignIn(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	tb := newTab(t, pageTimeout)

	// A page behind the sign-in sends there; a bad token is refused.
	tb.do("opening the charges signed out",
		chromedp.Navigate(s.base+"/dashboard/charges"),
		chromedp.WaitVisible(chromedp.ID("sign-in-form")),
		chromedp.SetValue(chromedp.ID("token"), "eyJhbGciOiJub25lIn0.e30.bad"),
		chromedp.Click(chromedp.CSS(`[data-testid="sign-in"]`)),
		chromedp.WaitVisible(chromedp.ID("error")),
	)
	require.Contains(t, tb.text("#error"), "invalid or expired")

	signIn(tb, s.base, s.token("merchant_a"), "merchant_a")
	tb.do("landing on the charges", chromedp.WaitVisible(chromedp.ID("charges-table")))

	// The session is a cookie the page's scripts cannot read, sent to this site only.
	cookies := run(tb, "reading the cookies", func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
		return res.Cookies, err
	})
	require.Len(t, cookies, 1)
	require.True(t, cookies[0].HTTPOnly, "session cookie is HttpOnly")
	require.Equal(t, network.CookieSameSiteStrict, cookies[0].SameSite)
	require.Equal(t, "/dashboard", cookies[0].Path)
	require.Empty(t, run(tb, "reading document.cookie", chromedp.Evaluate[string](`document.cookie`)))

	// Signing out ends the session: the pages send to the sign-in again.
	tb.do("signing out",
		chromedp.Click(chromedp.CSS(`[data-testid="sign-out"]`)),
		chromedp.WaitVisible(chromedp.ID("sign-in-form")),
		chromedp.Navigate(s.base+"/dashboard/charges"),
		chromedp.WaitVisible(chromedp.ID("sign-in-form")),
	)
	require.NotContains(t, tb.page(), "merchant_a")
}

func TestChargeSettlesOnItsPage(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	tb := newTab(t, pageTimeout)
	signIn(tb, s.base, s.token("merchant_a"), "merchant_a")

	// The processor holds the authorization, so the charge stays pending while the page
	// loads; the page must then notice the settlement by itself.
	s.processor.hold()
	ch, err := s.client("merchant_a").CreateCharge(context.Background(),
		client.ChargeParams{Amount: 1999, Currency: "usd", PaymentMethod: "pm_card_visa"})
	require.NoError(t, err)
	require.Equal(t, client.StatusPending, ch.Status)

	tb.do("opening the pending charge",
		chromedp.Navigate(s.base+"/dashboard/charges/"+ch.ID),
		chromedp.WaitVisible(chromedp.CSS(`#charge-status[data-status="pending"]`)),
	)
	require.Equal(t, ch.ID, tb.text("#charge-id"))
	require.Equal(t, "19.99 USD", tb.text("#charge-amount"))

	s.processor.release()
	tb.do("waiting for the page to show the charge settled",
		chromedp.WaitVisible(chromedp.CSS(`#charge-status[data-status="succeeded"]`)),
	)
	require.Equal(t, "succeeded", tb.text("#charge-status"))
	require.Equal(t, "19.99 USD", tb.text("#charge-amount-captured"))
	tb.do("the timeline shows the authorization",
		chromedp.WaitVisible(chromedp.CSS(`#charge-timeline li[data-sequence]`)),
		chromedp.WaitNotPresent(chromedp.ID("charge-live")),
	)
}

func TestRefundFromChargePage(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	tb := newTab(t, pageTimeout)
	signIn(tb, s.base, s.token("merchant_a"), "merchant_a")
	ch := settledCharge(t, s.client("merchant_a"), 5000)

	page := s.base + "/dashboard/charges/" + ch.ID
	tb.do("refunding 12.50 of 50.00 from the charge page",
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("refund-form")),
		chromedp.SetValue(chromedp.ID("refund-amount"), "1250"),
		chromedp.SetValue(chromedp.ID("refund-reason"), "requested_by_customer"),
		chromedp.Click(chromedp.CSS(`[data-testid="refund"]`)),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	require.Contains(t, tb.text("#notice"), "Refund accepted")

	// The worker records and settles the refund after the form's 202: reload until the
	// page shows it.
	reloadUntil(tb, page, `#charge-refunds tr[data-refund-id][data-status="succeeded"]`)
	row := tb.text(`#charge-refunds tr[data-refund-id]`)
	require.Contains(t, row, "12.50 USD")
	require.Contains(t, row, "requested_by_customer")
	require.Equal(t, "12.50 USD", tb.text("#charge-amount-refunded"))
	require.Len(t, refundsOf(t, s.client("merchant_a"), ch.ID), 1, "one refund, made once")
}

func TestRedeliverFromChargePage(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	recv := newReceiver(t)
	c := s.client("merchant_a")
	ep, err := c.CreateWebhookEndpoint(context.Background(),
		client.WebhookEndpointParams{URL: recv.URL, EnabledEvents: []string{client.EventAll}})
	require.NoError(t, err)

	tb := newTab(t, pageTimeout)
	signIn(tb, s.base, s.token("merchant_a"), "merchant_a")
	ch := settledCharge(t, c, 700)
	eventID := eventOf(t, c, ch.ID, "charge.succeeded")

	// The delivery is recorded after the receiver answered: reload until it is shown.
	page := s.base + "/dashboard/charges/" + ch.ID
	redeliver := `#charge-deliveries form[action$="/events/` + eventID + `/redeliver"] [data-testid="redeliver"]`
	reloadUntil(tb, page, redeliver)
	require.Equal(t, 1, recv.deliveries(eventID))
	require.Contains(t, tb.text("#charge-deliveries"), ep.ID)

	tb.do("redelivering the event from the charge page",
		chromedp.Click(chromedp.CSS(redeliver)),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	require.Contains(t, tb.text("#notice"), "Redelivery queued")
	require.Contains(t, tb.page(), "/dashboard/charges/"+ch.ID)
	require.Eventually(t, func() bool { return recv.deliveries(eventID) == 2 }, 20*time.Second, 20*time.Millisecond,
		"the receiver gets the event a second time")
	reloadUntil(tb, page, `#charge-deliveries tr[data-delivery-id]:nth-child(2)`)
}

func TestOtherMerchantsChargeIsNotFound(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	theirs := settledCharge(t, s.client("merchant_a"), 4321)

	tb := newTab(t, pageTimeout)
	signIn(tb, s.base, s.token("merchant_b"), "merchant_b")
	resp := run(tb, "opening their charge", chromedp.NavigateResponse(s.base+"/dashboard/charges/"+theirs.ID))
	require.Equal(t, 404, int(resp.Status))
	tb.do("the not-found page", chromedp.WaitVisible(chromedp.ID("not-found")))
	assertNothingOf(t, tb, theirs)
	// Nor through the script's status endpoint, with this session's cookie.
	status := run(tb, "fetching their charge's status", chromedp.Evaluate[int](
		`fetch(`+jsString("/dashboard/charges/"+theirs.ID+"/wait")+`).then(r => r.status)`, chromedp.EvalAwaitPromise))
	require.Equal(t, 404, status)

	// Nor by the search box.
	tb.do("searching for it by id",
		chromedp.Navigate(s.base+"/dashboard/charges"),
		chromedp.SetValue(chromedp.ID("search-id"), theirs.ID),
		chromedp.Click(chromedp.CSS(`[data-testid="search"]`)),
		chromedp.WaitVisible(chromedp.ID("not-found")),
	)
	assertNothingOf(t, tb, theirs)
	tb.do("the list", chromedp.Navigate(s.base+"/dashboard/charges"), chromedp.WaitVisible(chromedp.ID("charges-empty")))
}

// assertNothingOf requires the page on screen to show nothing of charge c.
func assertNothingOf(t *testing.T, tb *tab, c *client.Charge) {
	t.Helper()
	html := run(tb, "reading the page", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	for _, s := range []string{"43.21", "merchant_a", "pm_card_visa", "charge-status"} {
		require.NotContains(t, html, s)
	}
	// The id is in the address, and nowhere on the page.
	require.NotContains(t, strings.ReplaceAll(html, "/dashboard/charges/"+c.ID, ""), c.ID)
}

// settledCharge creates a charge of amount cents and waits for it to succeed.
func settledCharge(t *testing.T, c *client.Client, amount int64) *client.Charge {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := c.CreateCharge(ctx, client.ChargeParams{Amount: amount, Currency: "usd", PaymentMethod: "pm_card_visa"})
	require.NoError(t, err)
	ch, err = c.WaitCharge(ctx, ch.ID, 25*time.Second)
	require.NoError(t, err)
	require.Equal(t, client.StatusSucceeded, ch.Status)
	return ch
}

// eventOf returns the id of charge chargeID's event of type typ.
func eventOf(t *testing.T, c *client.Client, chargeID, typ string) string {
	t.Helper()
	var id string
	require.Eventually(t, func() bool {
		for ev, err := range c.ListEvents(context.Background(), client.ListEventsParams{Type: typ}) {
			require.NoError(t, err)
			if ev.Data.Object.ID == chargeID {
				id = ev.ID
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the %s event of %s", typ, chargeID)
	return id
}

func refundsOf(t *testing.T, c *client.Client, chargeID string) []client.Refund {
	t.Helper()
	var out []client.Refund
	for r, err := range c.ListRefunds(context.Background(), client.ListRefundsParams{Charge: chargeID}) {
		require.NoError(t, err)
		out = append(out, r)
	}
	return out
}

// reloadUntil loads url until an element sel matches is on it, for what the page shows
// only once a background step (a refund settling, a delivery recorded) is done; the
// tab's deadline bounds it.
func reloadUntil(tb *tab, url, sel string) {
	tb.t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		tb.do("loading "+url, chromedp.Navigate(url))
		if run(tb, "looking for "+sel, chromedp.Evaluate[bool](`document.querySelector(`+jsString(sel)+`) !== null`)) {
			return
		}
		if time.Now().After(tb.deadline) {
			tb.t.Fatalf("%s never showed %s%s", url, sel, tb.page())
		}
		<-tick.C
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
