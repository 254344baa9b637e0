package service_test

import (
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
)

// The webhook endpoints of these tests use literal public addresses: creating one needs
// no DNS, and nothing ever connects to them, because their merchants make no charges and
// so have no events to deliver.
const (
	hookURL      = "https://93.184.216.34/hooks"
	otherHookURL = "https://93.184.216.35/other"
)

var secretPattern = regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{43}=$`)

// requireProblem checks that r is a problem details answer with status, code and param.
func requireProblem(t *testing.T, r response, status int, code, param string) {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	p := r.json(t)
	require.Equal(t, code, p["code"], "body: %s", r.body)
	if param == "" {
		require.NotContains(t, p, "param", "body: %s", r.body)
	} else {
		require.Equal(t, param, p["param"], "body: %s", r.body)
	}
}

// createEndpoint creates an endpoint with a fresh key and requires a 201.
func (s *system) createEndpoint(token, body string) map[string]any {
	s.t.Helper()
	r := s.do("POST", "/v1/webhook_endpoints", token, body, "Idempotency-Key", newKey())
	require.Equal(s.t, http.StatusCreated, r.status, "body: %s", r.body)
	return r.json(s.t)
}

// listIDs returns the ids of a list answer, requiring a 200 list object with url.
func listIDs(t *testing.T, r response, url string) ([]string, bool) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	l := r.json(t)
	require.Equal(t, "list", l["object"])
	require.Equal(t, url, l["url"])
	data, ok := l["data"].([]any)
	require.True(t, ok, "data is not an array: %s", r.body)
	ids := make([]string, len(data))
	for i, d := range data {
		ids[i] = d.(map[string]any)["id"].(string)
	}
	return ids, l["has_more"].(bool)
}

func TestWebhookEndpointsAPI(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	tok := s.token("merchant_hooks")

	t.Run("create answers 201 with the secret, once", func(t *testing.T) {
		key := newKey()
		body := `{"url": "` + hookURL + `", "enabled_events": ["charge.succeeded", "charge.failed"], "description": "orders"}`
		first := s.do("POST", "/v1/webhook_endpoints", tok, body, "Idempotency-Key", key)
		require.Equal(t, http.StatusCreated, first.status, "body: %s", first.body)
		require.Equal(t, "application/json", first.header.Get("Content-Type"))
		require.Empty(t, first.header.Get("Idempotent-Replayed"))
		e := first.json(t)
		id, _ := e["id"].(string)
		require.True(t, charge.ValidID(charge.PrefixWebhookEndpoint, id), "id %q", id)
		require.Equal(t, "/v1/webhook_endpoints/"+id, first.header.Get("Location"))
		require.Equal(t, "webhook_endpoint", e["object"])
		require.Equal(t, hookURL, e["url"])
		require.Equal(t, []any{"charge.succeeded", "charge.failed"}, e["enabled_events"])
		require.Equal(t, "orders", e["description"])
		require.Equal(t, "enabled", e["status"])
		require.Regexp(t, secretPattern, e["secret"])
		require.NotEmpty(t, e["created_at"])
		for _, hidden := range []string{"merchant", "secrets", "version"} {
			require.NotContains(t, e, hidden)
		}

		// The same request, other key order and spacing: the same answer, secret included.
		again := s.do("POST", "/v1/webhook_endpoints", tok,
			`{ "description":"orders","enabled_events":["charge.succeeded","charge.failed"], "url":"`+hookURL+`" }`,
			"Idempotency-Key", key)
		require.Equal(t, http.StatusCreated, again.status, "body: %s", again.body)
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		require.Equal(t, first.body, again.body)
		require.Equal(t, first.header.Get("Location"), again.header.Get("Location"))

		// The same key with another request.
		r := s.do("POST", "/v1/webhook_endpoints", tok, `{"url": "`+otherHookURL+`", "enabled_events": ["*"]}`, "Idempotency-Key", key)
		requireProblem(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused", "")

		// Reading it never shows a secret.
		r = s.do("GET", "/v1/webhook_endpoints/"+id, tok, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		got := r.json(t)
		require.NotContains(t, got, "secret")
		require.NotContains(t, string(r.body), e["secret"].(string))
		require.Equal(t, id, got["id"])
		require.Equal(t, "webhook_endpoint", got["object"])
		require.Equal(t, e["enabled_events"], got["enabled_events"])
		require.Equal(t, e["created_at"], got["created_at"])
	})

	t.Run("list paginates newest first without secrets", func(t *testing.T) {
		tok := s.token("merchant_hooks_list")
		var ids []string
		for i := range 3 {
			e := s.createEndpoint(tok, fmt.Sprintf(`{"url": "%s/%d", "enabled_events": ["*"]}`, hookURL, i))
			ids = append(ids, e["id"].(string))
		}
		r := s.do("GET", "/v1/webhook_endpoints?limit=2", tok, "")
		page, more := listIDs(t, r, "/v1/webhook_endpoints")
		require.Equal(t, []string{ids[2], ids[1]}, page)
		require.True(t, more)
		require.NotContains(t, string(r.body), `"secret"`)

		page, more = listIDs(t, s.do("GET", "/v1/webhook_endpoints?limit=2&starting_after="+ids[1], tok, ""), "/v1/webhook_endpoints")
		require.Equal(t, []string{ids[0]}, page)
		require.False(t, more)

		page, more = listIDs(t, s.do("GET", "/v1/webhook_endpoints", tok, ""), "/v1/webhook_endpoints")
		require.Equal(t, []string{ids[2], ids[1], ids[0]}, page)
		require.False(t, more)

		page, _ = listIDs(t, s.do("GET", "/v1/webhook_endpoints", s.token("merchant_hooks_nobody"), ""), "/v1/webhook_endpoints")
		require.Empty(t, page)

		requireProblem(t, s.do("GET", "/v1/webhook_endpoints?limit=0", tok, ""), 400, "parameter_invalid", "limit")
		requireProblem(t, s.do("GET", "/v1/webhook_endpoints?limit=101", tok, ""), 400, "parameter_invalid", "limit")
		requireProblem(t, s.do("GET", "/v1/webhook_endpoints?starting_after=ch_nope", tok, ""), 400, "parameter_invalid", "starting_after")
		requireProblem(t, s.do("GET", "/v1/webhook_endpoints?starting_after="+charge.NewID(charge.PrefixCharge), tok, ""), 400, "parameter_invalid", "starting_after")
		requireProblem(t, s.do("GET", "/v1/webhook_endpoints?color=red", tok, ""), 400, "parameter_unknown", "color")
	})

	t.Run("patch updates what it names", func(t *testing.T) {
		e := s.createEndpoint(tok, `{"url": "`+hookURL+`", "enabled_events": ["charge.succeeded"]}`)
		id := e["id"].(string)
		path := "/v1/webhook_endpoints/" + id

		r := s.do("PATCH", path, tok, `{"url": "`+otherHookURL+`", "enabled_events": ["*"], "description": "all of them", "status": "disabled"}`)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		got := r.json(t)
		require.Equal(t, otherHookURL, got["url"])
		require.Equal(t, []any{"*"}, got["enabled_events"])
		require.Equal(t, "all of them", got["description"])
		require.Equal(t, "disabled", got["status"])
		require.NotContains(t, got, "secret")
		require.Equal(t, e["created_at"], got["created_at"])

		// Only what is named changes.
		r = s.do("PATCH", path, tok, `{"status": "enabled"}`)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		got = s.do("GET", path, tok, "").json(t)
		require.Equal(t, otherHookURL, got["url"])
		require.Equal(t, []any{"*"}, got["enabled_events"])
		require.Equal(t, "all of them", got["description"])
		require.Equal(t, "enabled", got["status"])

		requireProblem(t, s.do("PATCH", path, tok, `{"status": "paused"}`), 400, "parameter_invalid", "status")
		requireProblem(t, s.do("PATCH", path, tok, `{"url": "http://10.0.0.1/"}`), 400, "url_forbidden", "url")
		requireProblem(t, s.do("PATCH", path, tok, `{"url": "ftp://x"}`), 400, "url_invalid", "url")
		requireProblem(t, s.do("PATCH", path, tok, `{"enabled_events": []}`), 400, "parameter_invalid", "enabled_events")
		requireProblem(t, s.do("PATCH", path, tok, `{"secret": "whsec_mine"}`), 400, "parameter_unknown", "secret")
		got = s.do("GET", path, tok, "").json(t)
		require.Equal(t, otherHookURL, got["url"], "a rejected update changes nothing")
	})

	t.Run("delete, then it is gone", func(t *testing.T) {
		id := s.createEndpoint(tok, `{"url": "`+hookURL+`", "enabled_events": ["*"]}`)["id"].(string)
		r := s.do("DELETE", "/v1/webhook_endpoints/"+id, tok, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, map[string]any{"id": id, "object": "webhook_endpoint", "deleted": true}, r.json(t))
		requireProblem(t, s.do("GET", "/v1/webhook_endpoints/"+id, tok, ""), 404, "resource_missing", "id")
		requireProblem(t, s.do("DELETE", "/v1/webhook_endpoints/"+id, tok, ""), 404, "resource_missing", "id")
		requireProblem(t, s.do("PATCH", "/v1/webhook_endpoints/"+id, tok, `{"status": "enabled"}`), 404, "resource_missing", "id")
	})

	t.Run("rotate_secret answers a new secret, once", func(t *testing.T) {
		created := s.createEndpoint(tok, `{"url": "`+hookURL+`", "enabled_events": ["*"]}`)
		id := created["id"].(string)
		path := "/v1/webhook_endpoints/" + id + "/rotate_secret"

		requireProblem(t, s.do("POST", path, tok, ""), 400, "idempotency_key_missing", "Idempotency-Key")
		requireProblem(t, s.do("POST", path, tok, `{"secret": "x"}`, "Idempotency-Key", newKey()), 400, "parameter_unknown", "secret")

		key := newKey()
		r := s.do("POST", path, tok, "", "Idempotency-Key", key)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		rotated := r.json(t)
		require.Equal(t, id, rotated["id"])
		require.Equal(t, "webhook_endpoint", rotated["object"])
		require.Regexp(t, secretPattern, rotated["secret"])
		require.NotEqual(t, created["secret"], rotated["secret"])

		// A repeat (an empty object is the same request as no body) replays the same secret.
		again := s.do("POST", path, tok, `{}`, "Idempotency-Key", key)
		require.Equal(t, http.StatusOK, again.status, "body: %s", again.body)
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		require.Equal(t, r.body, again.body)

		r = s.do("GET", "/v1/webhook_endpoints/"+id, tok, "")
		require.Equal(t, http.StatusOK, r.status)
		require.NotContains(t, r.json(t), "secret")

		// Another rotation, another secret.
		next := s.do("POST", path, tok, `{}`, "Idempotency-Key", newKey())
		require.Equal(t, http.StatusOK, next.status, "body: %s", next.body)
		require.NotEqual(t, rotated["secret"], next.json(t)["secret"])

		requireProblem(t, s.do("POST", "/v1/webhook_endpoints/"+charge.NewID(charge.PrefixWebhookEndpoint)+"/rotate_secret", tok, "", "Idempotency-Key", newKey()), 404, "resource_missing", "id")
	})

	t.Run("deliveries of an endpoint with none", func(t *testing.T) {
		id := s.createEndpoint(tok, `{"url": "`+hookURL+`", "enabled_events": ["*"]}`)["id"].(string)
		url := "/v1/webhook_endpoints/" + id + "/deliveries"
		ids, more := listIDs(t, s.do("GET", url+"?limit=5", tok, ""), url)
		require.Empty(t, ids)
		require.False(t, more)
		requireProblem(t, s.do("GET", url+"?starting_after="+id, tok, ""), 400, "parameter_invalid", "starting_after")
		ids, _ = listIDs(t, s.do("GET", url+"?starting_after="+charge.NewID(charge.PrefixWebhookDelivery), tok, ""), url)
		require.Empty(t, ids)
	})

	t.Run("validation", func(t *testing.T) {
		// What is rejected leaves the key free: the request after each one reuses it.
		key := newKey()
		cases := []struct {
			name, body, code, param string
		}{
			{"missing url", `{"enabled_events": ["*"]}`, "parameter_missing", "url"},
			{"missing enabled_events", `{"url": "` + hookURL + `"}`, "parameter_missing", "enabled_events"},
			{"not http", `{"url": "ftp://x", "enabled_events": ["*"]}`, "url_invalid", "url"},
			{"relative", `{"url": "/hooks", "enabled_events": ["*"]}`, "url_invalid", "url"},
			{"credentials", `{"url": "https://user:pw@93.184.216.34/", "enabled_events": ["*"]}`, "url_invalid", "url"},
			{"loopback", `{"url": "http://127.0.0.1/x", "enabled_events": ["*"]}`, "url_forbidden", "url"},
			{"localhost", `{"url": "http://localhost:8080/x", "enabled_events": ["*"]}`, "url_forbidden", "url"},
			{"private 10/8", `{"url": "http://10.0.0.1/", "enabled_events": ["*"]}`, "url_forbidden", "url"},
			{"private 192.168/16", `{"url": "http://192.168.1.1/", "enabled_events": ["*"]}`, "url_forbidden", "url"},
			{"metadata", `{"url": "http://169.254.169.254/latest/meta-data", "enabled_events": ["*"]}`, "url_forbidden", "url"},
			{"ipv6 loopback", `{"url": "http://[::1]/", "enabled_events": ["*"]}`, "url_forbidden", "url"},
			{"ipv4-mapped loopback", `{"url": "http://[::ffff:127.0.0.1]/", "enabled_events": ["*"]}`, "url_forbidden", "url"},
			{"unique local", `{"url": "http://[fd00::1]/", "enabled_events": ["*"]}`, "url_forbidden", "url"},
			{"ipv6 link-local", `{"url": "http://[fe80::1]/", "enabled_events": ["*"]}`, "url_forbidden", "url"},
			{"no events", `{"url": "` + hookURL + `", "enabled_events": []}`, "parameter_invalid", "enabled_events"},
			{"unknown event", `{"url": "` + hookURL + `", "enabled_events": ["nope"]}`, "parameter_invalid", "enabled_events"},
			{"events not a list", `{"url": "` + hookURL + `", "enabled_events": "*"}`, "parameter_invalid", "enabled_events"},
			{"unknown field", `{"url": "` + hookURL + `", "enabled_events": ["*"], "color": "red"}`, "parameter_unknown", "color"},
			{"status on create", `{"url": "` + hookURL + `", "enabled_events": ["*"], "status": "disabled"}`, "parameter_unknown", "status"},
			{"not json", `{"url": `, "invalid_json", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do("POST", "/v1/webhook_endpoints", tok, tc.body, "Idempotency-Key", key)
				requireProblem(t, r, http.StatusBadRequest, tc.code, tc.param)
			})
		}
		requireProblem(t, s.do("POST", "/v1/webhook_endpoints", tok, `{"url": "`+hookURL+`", "enabled_events": ["*"]}`),
			400, "idempotency_key_missing", "Idempotency-Key")
		r := s.do("POST", "/v1/webhook_endpoints", tok, `{"url": "`+hookURL+`", "enabled_events": ["*"]}`, "Idempotency-Key", key)
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		require.Empty(t, r.header.Get("Idempotent-Replayed"))
	})

	t.Run("malformed and unknown ids are 404", func(t *testing.T) {
		for _, id := range []string{"nope", "we_nope", charge.NewID(charge.PrefixCharge), charge.NewID(charge.PrefixWebhookEndpoint)} {
			requireProblem(t, s.do("GET", "/v1/webhook_endpoints/"+id, tok, ""), 404, "resource_missing", "id")
			requireProblem(t, s.do("GET", "/v1/webhook_endpoints/"+id+"/deliveries", tok, ""), 404, "resource_missing", "id")
		}
	})

	t.Run("scopes", func(t *testing.T) {
		id := s.createEndpoint(tok, `{"url": "`+hookURL+`", "enabled_events": ["*"]}`)["id"].(string)
		noManage := s.token("merchant_hooks", "charges:write", "charges:read", "events:read")
		noEvents := s.token("merchant_hooks", "charges:write", "charges:read", "webhooks:manage")
		evt := charge.NewID(charge.PrefixEvent)
		cases := []struct {
			method, path, token, body string
		}{
			{"POST", "/v1/webhook_endpoints", noManage, `{"url": "` + hookURL + `", "enabled_events": ["*"]}`},
			{"GET", "/v1/webhook_endpoints", noManage, ""},
			{"GET", "/v1/webhook_endpoints/" + id, noManage, ""},
			{"PATCH", "/v1/webhook_endpoints/" + id, noManage, `{"status": "disabled"}`},
			{"DELETE", "/v1/webhook_endpoints/" + id, noManage, ""},
			{"POST", "/v1/webhook_endpoints/" + id + "/rotate_secret", noManage, ""},
			{"GET", "/v1/webhook_endpoints/" + id + "/deliveries", noManage, ""},
			{"POST", "/v1/events/" + evt + "/redeliver", noManage, ""},
			{"GET", "/v1/events", noEvents, ""},
			{"GET", "/v1/events/" + evt, noEvents, ""},
		}
		for _, tc := range cases {
			r := s.do(tc.method, tc.path, tc.token, tc.body, "Idempotency-Key", newKey())
			requireProblem(t, r, http.StatusForbidden, "insufficient_scope", "")
		}
		got := s.do("GET", "/v1/webhook_endpoints/"+id, tok, "").json(t)
		require.Equal(t, "enabled", got["status"], "nothing a forbidden request asked was done")
	})

	t.Run("other merchants get 404", func(t *testing.T) {
		created := s.createEndpoint(tok, `{"url": "`+hookURL+`", "enabled_events": ["*"]}`)
		id := created["id"].(string)
		other := s.token("merchant_hooks_other")
		requireProblem(t, s.do("GET", "/v1/webhook_endpoints/"+id, other, ""), 404, "resource_missing", "id")
		requireProblem(t, s.do("PATCH", "/v1/webhook_endpoints/"+id, other, `{"status": "disabled"}`), 404, "resource_missing", "id")
		requireProblem(t, s.do("DELETE", "/v1/webhook_endpoints/"+id, other, ""), 404, "resource_missing", "id")
		requireProblem(t, s.do("POST", "/v1/webhook_endpoints/"+id+"/rotate_secret", other, "", "Idempotency-Key", newKey()), 404, "resource_missing", "id")
		requireProblem(t, s.do("GET", "/v1/webhook_endpoints/"+id+"/deliveries", other, ""), 404, "resource_missing", "id")
		ids, _ := listIDs(t, s.do("GET", "/v1/webhook_endpoints", other, ""), "/v1/webhook_endpoints")
		require.NotContains(t, ids, id)

		// The owner's endpoint is as it was.
		r := s.do("GET", "/v1/webhook_endpoints/"+id, tok, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		got := r.json(t)
		require.Equal(t, "enabled", got["status"])
		require.Equal(t, created["updated_at"], got["updated_at"])
	})
}

func TestEventsAPI(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	// This merchant has no webhook endpoints: its events are delivered nowhere.
	tok := s.token("merchant_events")
	other := s.token("merchant_events_other")

	ch := s.create(tok, chargeBody(1250, "pm_card_visa"))
	chargeID := ch["id"].(string)
	require.Equal(t, "succeeded", s.settle(tok, chargeID)["status"])

	var event map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for event == nil {
		r := s.do("GET", "/v1/events?type=charge.succeeded", tok, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		l := r.json(t)
		require.Equal(t, "list", l["object"])
		require.Equal(t, "/v1/events", l["url"])
		for _, d := range l["data"].([]any) {
			e := d.(map[string]any)
			require.Equal(t, "charge.succeeded", e["type"])
			if e["data"].(map[string]any)["object"].(map[string]any)["id"] == chargeID {
				event = e
			}
		}
		if event == nil {
			require.True(t, time.Now().Before(deadline), "no charge.succeeded event for %s", chargeID)
			time.Sleep(100 * time.Millisecond)
		}
	}
	eventID := event["id"].(string)
	require.True(t, charge.ValidID(charge.PrefixEvent, eventID), "id %q", eventID)
	require.Equal(t, "event", event["object"])
	require.Equal(t, float64(1), event["sequence"])
	require.NotEmpty(t, event["created_at"])
	obj := event["data"].(map[string]any)["object"].(map[string]any)
	require.Equal(t, "charge", obj["object"])
	require.Equal(t, "succeeded", obj["status"])
	require.Equal(t, float64(1250), obj["amount"])
	require.NotContains(t, event, "merchant")

	t.Run("get", func(t *testing.T) {
		r := s.do("GET", "/v1/events/"+eventID, tok, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, event, r.json(t))
		for _, id := range []string{"nope", "evt_nope", charge.NewID(charge.PrefixEvent), chargeID} {
			requireProblem(t, s.do("GET", "/v1/events/"+id, tok, ""), 404, "resource_missing", "id")
		}
	})

	t.Run("list", func(t *testing.T) {
		ids, _ := listIDs(t, s.do("GET", "/v1/events", tok, ""), "/v1/events")
		require.Contains(t, ids, eventID)
		ids, more := listIDs(t, s.do("GET", "/v1/events?type=charge.failed", tok, ""), "/v1/events")
		require.Empty(t, ids)
		require.False(t, more)
		ids, _ = listIDs(t, s.do("GET", "/v1/events?limit=1&starting_after="+eventID, tok, ""), "/v1/events")
		require.NotContains(t, ids, eventID)

		requireProblem(t, s.do("GET", "/v1/events?type=bogus", tok, ""), 400, "parameter_invalid", "type")
		requireProblem(t, s.do("GET", "/v1/events?type=*", tok, ""), 400, "parameter_invalid", "type")
		requireProblem(t, s.do("GET", "/v1/events?limit=0", tok, ""), 400, "parameter_invalid", "limit")
		requireProblem(t, s.do("GET", "/v1/events?starting_after="+chargeID, tok, ""), 400, "parameter_invalid", "starting_after")
		requireProblem(t, s.do("GET", "/v1/events?charge="+chargeID, tok, ""), 400, "parameter_unknown", "charge")
	})

	t.Run("redeliver", func(t *testing.T) {
		path := "/v1/events/" + eventID + "/redeliver"
		requireProblem(t, s.do("POST", path, tok, ""), 400, "idempotency_key_missing", "Idempotency-Key")

		// No endpoints: nothing to send, and still accepted.
		key := newKey()
		r := s.do("POST", path, tok, "", "Idempotency-Key", key)
		require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
		require.Equal(t, event, r.json(t))
		again := s.do("POST", path, tok, "{}", "Idempotency-Key", key)
		require.Equal(t, http.StatusAccepted, again.status, "body: %s", again.body)
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		require.Equal(t, r.body, again.body)

		unknown := charge.NewID(charge.PrefixWebhookEndpoint)
		requireProblem(t, s.do("POST", path, tok, `{"endpoint": "`+unknown+`"}`, "Idempotency-Key", newKey()), 404, "resource_missing", "endpoint")
		requireProblem(t, s.do("POST", path, tok, `{"endpoint": "nope"}`, "Idempotency-Key", newKey()), 400, "parameter_invalid", "endpoint")
		requireProblem(t, s.do("POST", path, tok, `{"endpoint": 7}`, "Idempotency-Key", newKey()), 400, "parameter_invalid", "endpoint")
		requireProblem(t, s.do("POST", path, tok, `{"to": "all"}`, "Idempotency-Key", newKey()), 400, "parameter_unknown", "to")
		requireProblem(t, s.do("POST", "/v1/events/"+charge.NewID(charge.PrefixEvent)+"/redeliver", tok, "", "Idempotency-Key", newKey()), 404, "resource_missing", "id")

		// Another merchant's endpoint is as unknown as one that never was. That merchant
		// makes no charges, so nothing is ever sent to it.
		theirs := s.createEndpoint(other, `{"url": "`+hookURL+`", "enabled_events": ["*"]}`)["id"].(string)
		requireProblem(t, s.do("POST", path, tok, `{"endpoint": "`+theirs+`"}`, "Idempotency-Key", newKey()), 404, "resource_missing", "endpoint")
	})

	t.Run("other merchants get 404", func(t *testing.T) {
		requireProblem(t, s.do("GET", "/v1/events/"+eventID, other, ""), 404, "resource_missing", "id")
		requireProblem(t, s.do("POST", "/v1/events/"+eventID+"/redeliver", other, "", "Idempotency-Key", newKey()), 404, "resource_missing", "id")
		ids, _ := listIDs(t, s.do("GET", "/v1/events", other, ""), "/v1/events")
		require.NotContains(t, ids, eventID)
	})
}
