package service_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// dashboardScopes are every scope, the operator's included.
var dashboardScopes = append(append([]string{}, allScopes...), "ops:read", "ops:write")

// browser is an http.Client with a cookie jar on the dashboard, following no redirect.
type browser struct {
	t      *testing.T
	base   string
	client *http.Client
}

func (s *system) browser() *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(s.t, err)
	return &browser{t: s.t, base: s.base, client: &http.Client{
		Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is an answer of the dashboard with its body read.
type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, headers ...string) page {
	b.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	require.NoError(b.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.client.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return page{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

func (b *browser) get(path string) page { b.t.Helper(); return b.do("GET", path, nil) }

func (b *browser) signIn(token string) page {
	b.t.Helper()
	return b.do("POST", "/dashboard/sign-in", url.Values{"token": {token}})
}

// field returns the value of the hidden input name inside the form with id formID.
func field(t *testing.T, body, formID, name string) string {
	t.Helper()
	i := strings.Index(body, `id="`+formID+`"`)
	require.GreaterOrEqual(t, i, 0, "no form %s in %s", formID, body)
	form := body[i:]
	form = form[:strings.Index(form, "</form>")]
	m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(form)
	require.NotNil(t, m, "no %s in form %s", name, formID)
	return m[1]
}

const csp = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func requirePage(t *testing.T, p page, status int) {
	t.Helper()
	require.Equal(t, status, p.status, "body: %s", p.body)
	require.Equal(t, csp, p.header.Get("Content-Security-Policy"))
	require.Equal(t, "nosniff", p.header.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", p.header.Get("Referrer-Policy"))
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_dash", dashboardScopes...)
	other := s.token("merchant_other")

	// A captured charge to refund, an authorization to look at, another merchant's charge.
	paid := s.create(tok, `{"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa", "customer": "cus_1"}`)["id"].(string)
	auth := s.create(tok, `{"amount": 5000, "currency": "eur", "payment_method": "pm_card_visa", "capture": false}`)["id"].(string)
	theirs := s.create(other, `{"amount": 100, "currency": "usd", "payment_method": "pm_card_visa"}`)["id"].(string)
	require.Equal(t, "succeeded", s.settle(tok, paid)["status"])
	require.Equal(t, "requires_capture", s.settle(tok, auth)["status"])
	endpoint := s.createEndpoint(tok, `{"url": "`+otherHookURL+`", "enabled_events": ["*"]}`)["id"].(string)

	t.Run("sign-in sets the session cookie", func(t *testing.T) {
		b := s.browser()
		before := time.Now()
		p := b.signIn(tok)
		require.Equal(t, http.StatusSeeOther, p.status, "body: %s", p.body)
		cookies := (&http.Response{Header: p.header}).Cookies()
		require.Len(t, cookies, 1)
		c := cookies[0]
		require.Equal(t, "billing_dashboard", c.Name)
		require.Equal(t, tok, c.Value)
		require.True(t, c.HttpOnly)
		require.False(t, c.Secure, "no TLS here")
		require.Equal(t, http.SameSiteStrictMode, c.SameSite)
		require.Equal(t, "/dashboard", c.Path)
		require.WithinDuration(t, before.Add(time.Hour), c.Expires, 5*time.Second, "expires with the token")
		require.InDelta(t, time.Hour.Seconds(), c.MaxAge, 5)
		require.Equal(t, http.StatusSeeOther, b.get("/dashboard").status)
	})

	t.Run("bad and expired tokens are refused", func(t *testing.T) {
		b := s.browser()
		expired, err := s.key.Sign(s.cfg.AuthIssuer, s.cfg.AuthAudience, "merchant_dash", dashboardScopes, time.Hour, time.Now().Add(-2*time.Hour))
		require.NoError(t, err)
		for _, bad := range []string{"", "not.a.token", tok + "x", expired} {
			p := b.signIn(bad)
			requirePage(t, p, http.StatusUnauthorized)
			require.Empty(t, p.header.Values("Set-Cookie"))
		}
		// Without a session every page sends to sign-in; a forged cookie is no session.
		require.Equal(t, "/dashboard/sign-in", b.get("/dashboard/charges").header.Get("Location"))
		u, _ := url.Parse(s.base + "/dashboard")
		b.client.Jar.SetCookies(u, []*http.Cookie{{Name: "billing_dashboard", Value: expired, Path: "/dashboard"}})
		require.Equal(t, "/dashboard/sign-in", b.get("/dashboard/charges").header.Get("Location"))
	})

	b := s.browser()
	require.Equal(t, http.StatusSeeOther, b.signIn(tok).status)

	t.Run("every page answers with the CSP", func(t *testing.T) {
		for _, path := range []string{
			"/dashboard/sign-in", "/dashboard/charges", "/dashboard/charges?status=succeeded",
			"/dashboard/charges?created_from=2000-01-01&created_to=2999-12-31", "/dashboard/charges/" + paid,
			"/dashboard/charges/" + auth, "/dashboard/balance", "/dashboard/webhooks", "/dashboard/webhooks/" + endpoint,
			"/dashboard/events", "/dashboard/events?type=charge.succeeded", "/dashboard/ops",
		} {
			requirePage(t, b.get(path), http.StatusOK)
		}
		list := b.get("/dashboard/charges")
		require.Contains(t, list.body, `data-charge-id="`+paid+`"`)
		require.Contains(t, list.body, `data-charge-id="`+auth+`"`)
		require.NotContains(t, list.body, theirs)
		require.Contains(t, b.get("/dashboard/charges?status=requires_capture").body, auth)
		require.NotContains(t, b.get("/dashboard/charges?status=requires_capture").body, `data-charge-id="`+paid+`"`)
		require.NotContains(t, b.get("/dashboard/charges?created_to=2000-01-01").body, paid)
		require.NotContains(t, b.get("/dashboard/charges?created_from=2999-01-01").body, paid)
		require.Equal(t, "/dashboard/charges/"+paid, b.get("/dashboard/charges?q="+paid).header.Get("Location"))
		ofCustomer := b.get("/dashboard/charges?customer=cus_1")
		requirePage(t, ofCustomer, http.StatusOK)
		require.Contains(t, ofCustomer.body, `data-charge-id="`+paid+`"`)
		require.NotContains(t, ofCustomer.body, `data-charge-id="`+auth+`"`, "a charge without that customer")
		require.NotContains(t, b.get("/dashboard/charges?customer=cus_2").body, `data-charge-id="`+paid+`"`)

		c := b.get("/dashboard/charges/" + auth)
		require.Contains(t, c.body, `id="charge-status"`)
		require.Contains(t, c.body, `id="capture-form"`)
		require.Contains(t, c.body, `id="cancel-form"`)
		require.Contains(t, b.get("/dashboard/balance").body, `data-currency="usd"`)
		ops := b.get("/dashboard/ops")
		require.Contains(t, ops.body, `id="queue-pending"`)
		require.NotContains(t, ops.body, "cannot be read", "the backlog is read from the queue")
		require.Contains(t, ops.body, `id="dead-letters-empty"`)
		for _, asset := range []string{"/dashboard/assets/dashboard.css", "/dashboard/assets/dashboard.js"} {
			requirePage(t, b.get(asset), http.StatusOK)
		}
		wait := b.get("/dashboard/charges/" + paid + "/wait")
		require.Equal(t, http.StatusOK, wait.status)
		require.JSONEq(t, `{"status": "succeeded"}`, wait.body)
	})

	t.Run("another merchant's charge is the missing page", func(t *testing.T) {
		missing := b.get("/dashboard/charges/ch_01jzzzzzzzzzzzzzzzzzzzzzzz")
		requirePage(t, missing, http.StatusNotFound)
		p := b.get("/dashboard/charges/" + theirs)
		requirePage(t, p, http.StatusNotFound)
		require.Equal(t, missing.body, p.body)
		require.NotContains(t, p.body, theirs)
		require.Equal(t, http.StatusNotFound, b.get("/dashboard/charges/"+theirs+"/wait").status)

		form := url.Values{"csrf_token": {field(t, b.get("/dashboard/charges/"+paid).body, "refund-form", "csrf_token")},
			"idempotency_key": {"dash_other"}, "amount": {"50"}}
		requirePage(t, b.do("POST", "/dashboard/charges/"+theirs+"/refund", form), http.StatusNotFound)
	})

	t.Run("forms need the session's token and the same origin", func(t *testing.T) {
		p := b.get("/dashboard/charges/" + paid)
		form := url.Values{"csrf_token": {field(t, p.body, "refund-form", "csrf_token")},
			"idempotency_key": {field(t, p.body, "refund-form", "idempotency_key")}, "amount": {"100"}}

		noToken := url.Values{"idempotency_key": form["idempotency_key"], "amount": {"100"}}
		requirePage(t, b.do("POST", "/dashboard/charges/"+paid+"/refund", noToken), http.StatusForbidden)
		wrong := url.Values{"csrf_token": {"forged"}, "idempotency_key": form["idempotency_key"], "amount": {"100"}}
		requirePage(t, b.do("POST", "/dashboard/charges/"+paid+"/refund", wrong), http.StatusForbidden)
		requirePage(t, b.do("POST", "/dashboard/charges/"+paid+"/refund", form, "Origin", "https://evil.example"), http.StatusForbidden)
		requirePage(t, b.do("POST", "/dashboard/charges/"+paid+"/refund", form, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden)
		requirePage(t, b.do("POST", "/dashboard/sign-out", url.Values{}), http.StatusForbidden)

		// Another session's token is not this one's.
		b2 := s.browser()
		require.Equal(t, http.StatusSeeOther, b2.signIn(s.token("merchant_dash", dashboardScopes...)+"").status)
		requirePage(t, b2.do("POST", "/dashboard/charges/"+paid+"/refund", url.Values{"csrf_token": {"x"}}), http.StatusForbidden)
		// None of these refunded anything.
		require.Equal(t, float64(0), s.do("GET", "/v1/charges/"+paid, tok, "").json(t)["amount_refunded"])
	})

	t.Run("a refund submitted twice is made once", func(t *testing.T) {
		p := b.get("/dashboard/charges/" + paid)
		form := url.Values{"csrf_token": {field(t, p.body, "refund-form", "csrf_token")},
			"idempotency_key": {field(t, p.body, "refund-form", "idempotency_key")}, "amount": {"500"}}
		first := b.do("POST", "/dashboard/charges/"+paid+"/refund", form)
		require.Equal(t, http.StatusSeeOther, first.status, "body: %s", first.body)
		require.Equal(t, "/dashboard/charges/"+paid+"?done=refund", first.header.Get("Location"))
		second := b.do("POST", "/dashboard/charges/"+paid+"/refund", form)
		require.Equal(t, http.StatusSeeOther, second.status, "body: %s", second.body)
		require.Contains(t, second.header.Get("Location"), "replayed=1")
		require.Contains(t, b.get(second.header.Get("Location")).body, "already submitted")

		waitFor(t, "the refund settled", 30*time.Second, func() bool {
			return s.do("GET", "/v1/charges/"+paid, tok, "").json(t)["amount_refunded"] == float64(500)
		})
		refunds := s.do("GET", "/v1/refunds?charge="+paid, tok, "").json(t)["data"].([]any)
		require.Len(t, refunds, 1)
		page := b.get("/dashboard/charges/" + paid)
		require.Equal(t, 1, strings.Count(page.body, "data-refund-id="))

		// Too much is refused with the page and its message, and refunds nothing.
		form.Set("idempotency_key", field(t, page.body, "refund-form", "idempotency_key"))
		form.Set("amount", "999999")
		tooMuch := b.do("POST", "/dashboard/charges/"+paid+"/refund", form)
		requirePage(t, tooMuch, http.StatusBadRequest)
		require.Contains(t, tooMuch.body, `id="error"`)
	})

	t.Run("capture from the page", func(t *testing.T) {
		p := b.get("/dashboard/charges/" + auth)
		form := url.Values{"csrf_token": {field(t, p.body, "capture-form", "csrf_token")},
			"idempotency_key": {field(t, p.body, "capture-form", "idempotency_key")}, "amount": {"4000"}}
		r := b.do("POST", "/dashboard/charges/"+auth+"/capture", form)
		require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
		waitFor(t, "the capture settled", 30*time.Second, func() bool {
			return s.do("GET", "/v1/charges/"+auth, tok, "").json(t)["status"] == "succeeded"
		})
		c := b.get("/dashboard/charges/" + auth)
		require.Contains(t, c.body, `data-status="succeeded"`)
		require.Contains(t, c.body, `data-kind="capture_requested"`)
		require.Contains(t, c.body, `id="charge-ledger"`)
	})

	t.Run("webhook endpoint actions", func(t *testing.T) {
		p := b.get("/dashboard/webhooks/" + endpoint)
		csrf := field(t, p.body, "rotate-form", "csrf_token")
		form := url.Values{"csrf_token": {csrf}, "idempotency_key": {field(t, p.body, "rotate-form", "idempotency_key")}}
		first := b.do("POST", "/dashboard/webhooks/"+endpoint+"/rotate", form)
		requirePage(t, first, http.StatusOK)
		secret := regexp.MustCompile(`data-testid="secret">(whsec_[^<]+)<`).FindStringSubmatch(first.body)
		require.NotNil(t, secret, first.body)
		again := b.do("POST", "/dashboard/webhooks/"+endpoint+"/rotate", form)
		require.Contains(t, again.body, secret[1], "a double submit shows the same secret")
		require.NotContains(t, b.get("/dashboard/webhooks/"+endpoint).body, secret[1], "shown once")

		r := b.do("POST", "/dashboard/webhooks/"+endpoint+"/status", url.Values{"csrf_token": {csrf}, "status": {"disabled"}})
		require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
		require.Contains(t, b.get("/dashboard/webhooks/"+endpoint).body, `id="endpoint-status" class="status status-disabled" data-status="disabled"`)
		r = b.do("POST", "/dashboard/webhooks/"+endpoint+"/status", url.Values{"csrf_token": {csrf}, "status": {"enabled"}})
		require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	})

	t.Run("scopes hide and forbid", func(t *testing.T) {
		ro := s.browser()
		require.Equal(t, http.StatusSeeOther, ro.signIn(s.token("merchant_dash", "charges:read")).status)
		p := ro.get("/dashboard/charges/" + paid)
		requirePage(t, p, http.StatusOK)
		require.NotContains(t, p.body, `id="refund-form"`)
		require.NotContains(t, p.body, `id="charge-deliveries"`)
		require.NotContains(t, p.body, `id="nav-webhooks"`)
		require.NotContains(t, p.body, `id="nav-ops"`)
		csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(p.body)[1]
		form := url.Values{"csrf_token": {csrf}, "idempotency_key": {"dash_ro_1"}, "amount": {"1"}}
		requirePage(t, ro.do("POST", "/dashboard/charges/"+paid+"/refund", form), http.StatusForbidden)
		for _, path := range []string{"/dashboard/webhooks", "/dashboard/webhooks/" + endpoint, "/dashboard/events", "/dashboard/ops"} {
			requirePage(t, ro.get(path), http.StatusForbidden)
		}
		requirePage(t, ro.do("POST", "/dashboard/webhooks/"+endpoint+"/status", url.Values{"csrf_token": {csrf}, "status": {"disabled"}}), http.StatusForbidden)

		opsRead := s.browser()
		require.Equal(t, http.StatusSeeOther, opsRead.signIn(s.token("merchant_dash", "ops:read")).status)
		requirePage(t, opsRead.get("/dashboard/ops"), http.StatusOK)
		requirePage(t, opsRead.get("/dashboard/charges"), http.StatusForbidden)
		requirePage(t, opsRead.do("POST", "/dashboard/ops/dead-letters/replay", url.Values{"csrf_token": {"x"}, "id": {"x"}}), http.StatusForbidden)
	})

	t.Run("sign-out ends the session", func(t *testing.T) {
		p := b.get("/dashboard/balance")
		csrf := field(t, p.body, "sign-out-form", "csrf_token")
		r := b.do("POST", "/dashboard/sign-out", url.Values{"csrf_token": {csrf}})
		require.Equal(t, http.StatusSeeOther, r.status)
		require.Equal(t, "/dashboard/sign-in", b.get("/dashboard/balance").header.Get("Location"))
	})
}
