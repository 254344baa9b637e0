package dashboard

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
	"github.com/billing/billing/internal/webhook"
)

// endpointsView is the webhook endpoints page.
type endpointsView struct {
	Endpoints []webhook.Endpoint
	Next      string
}

// endpoints lists the merchant's webhook endpoints, newest first.
//
// Store queries: one ListEndpoints (merchant, id < cursor, limit 25).
func (s *Dashboard) endpoints(w http.ResponseWriter, r *http.Request, sess *session) {
	after := r.URL.Query().Get("starting_after")
	if after != "" && !charge.ValidID(charge.PrefixWebhookEndpoint, after) {
		after = ""
	}
	es, more, err := s.Webhooks.List(r.Context(), sess.Merchant, pageSize, after)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	v := endpointsView{Endpoints: es}
	if more && len(es) > 0 {
		v.Next = url.Values{"starting_after": {es[len(es)-1].ID}}.Encode()
	}
	s.render(w, r, http.StatusOK, "webhooks", sess, &view{Title: "Webhook endpoints", Data: v})
}

// endpointView is one endpoint's page.
type endpointView struct {
	Endpoint   webhook.Endpoint
	Deliveries []webhook.Delivery
	Next       string
	// Secret is the new signing secret, shown once: on the answer to a rotation.
	Secret string
}

// endpoint is one endpoint with its delivery log, newest first, and its actions.
//
// Store queries: Endpoint (by id, merchant checked), one ListDeliveries (endpoint, id <
// cursor, limit 25).
func (s *Dashboard) endpoint(w http.ResponseWriter, r *http.Request, sess *session) {
	v, err := s.loadEndpoint(r, sess)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.render(w, r, http.StatusOK, "webhook", sess, &view{Title: "Endpoint " + v.Endpoint.ID, Data: v, Notice: notice(r.URL.Query())})
}

func (s *Dashboard) loadEndpoint(r *http.Request, sess *session) (*endpointView, error) {
	id := r.PathValue("id")
	e, err := s.Webhooks.Get(r.Context(), sess.Merchant, id)
	if err != nil {
		return nil, err
	}
	after := r.URL.Query().Get("starting_after")
	if after != "" && !charge.ValidID(charge.PrefixWebhookDelivery, after) {
		after = ""
	}
	ds, more, err := s.Webhooks.Deliveries(r.Context(), sess.Merchant, id, pageSize, after)
	if err != nil {
		return nil, err
	}
	v := &endpointView{Endpoint: e, Deliveries: ds}
	if more && len(ds) > 0 {
		v.Next = url.Values{"starting_after": {ds[len(ds)-1].ID}}.Encode()
	}
	return v, nil
}

// endpointFailed shows the endpoint page again with what went wrong.
func (s *Dashboard) endpointFailed(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	status, msg := describe(err)
	if status == http.StatusNotFound || status >= 500 {
		s.fail(w, r, sess, err)
		return
	}
	v, lerr := s.loadEndpoint(r, sess)
	if lerr != nil {
		s.fail(w, r, sess, lerr)
		return
	}
	s.render(w, r, status, "webhook", sess, &view{Title: "Endpoint " + v.Endpoint.ID, Data: v, Error: msg})
}

// rotate rotates the endpoint's signing secret through the API's idempotent action and
// shows the new secret on this answer only (a double submit shows the same one).
func (s *Dashboard) rotate(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	req, ok := formRequest(r, sess, "/v1/webhook_endpoints/"+id+"/rotate_secret", map[string]any{})
	if !ok {
		s.endpointFailed(w, r, sess, errBadForm)
		return
	}
	e, payload, err := s.Webhooks.PrepareRotate(r.Context(), sess.Merchant, id)
	if err != nil {
		s.endpointFailed(w, r, sess, err)
		return
	}
	body, err := json.Marshal(e.Public())
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	resp, err := s.Idempotency.Submit(r.Context(), req, ingest.Response{Status: http.StatusOK, Body: body, Sensitive: true},
		ingest.Action{Kind: webhook.ActionRotate, Payload: payload})
	if err != nil {
		s.endpointFailed(w, r, sess, err)
		return
	}
	var rotated webhook.Endpoint
	if err := json.Unmarshal(resp.Body, &rotated); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	v, err := s.loadEndpoint(r, sess)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	v.Secret = rotated.Secret
	s.render(w, r, http.StatusOK, "webhook", sess, &view{Title: "Endpoint " + id, Data: v,
		Notice: "Secret rotated. Copy the new secret now: it is not shown again. The old one signs for 24 more hours."})
}

// setStatus enables or disables the endpoint (the API's PATCH, which is idempotent by
// nature: setting a status twice is the same as once).
func (s *Dashboard) setStatus(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	status := r.PostFormValue("status")
	if status != string(webhook.StatusEnabled) && status != string(webhook.StatusDisabled) {
		s.endpointFailed(w, r, sess, errBadForm)
		return
	}
	if _, err := s.Webhooks.Update(r.Context(), sess.Merchant, id, &webhook.EndpointParams{Status: &status}); err != nil {
		s.endpointFailed(w, r, sess, err)
		return
	}
	http.Redirect(w, r, Prefix+"/webhooks/"+id+"?done="+status, http.StatusSeeOther)
}

// redeliver sends an event again to one endpoint, through the API's idempotent action.
func (s *Dashboard) redeliver(w http.ResponseWriter, r *http.Request, sess *session) {
	eventID, endpointID := r.PathValue("id"), r.PostFormValue("endpoint")
	if !charge.ValidID(charge.PrefixWebhookEndpoint, endpointID) {
		s.fail(w, r, sess, charge.ErrNotFound)
		return
	}
	req, ok := formRequest(r, sess, "/v1/events/"+eventID+"/redeliver", map[string]any{"endpoint": endpointID})
	if !ok {
		s.fail(w, r, sess, errBadForm)
		return
	}
	rd, err := s.Webhooks.PrepareRedeliver(r.Context(), sess.Merchant, eventID, endpointID)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	resp, err := s.Idempotency.Submit(r.Context(), req, ingest.Response{Status: http.StatusAccepted, Body: rd.Body},
		ingest.Action{Kind: webhook.ActionRedeliver, Payload: rd.Payload})
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	back := Prefix + "/webhooks/" + endpointID
	if r.PostFormValue("return") == "charge" {
		back = Prefix + "/charges/" + rd.Event.ChargeID
	}
	done(w, r, back, "redeliver", resp)
}

// eventsView is the events page.
type eventsView struct {
	Events []charge.Event
	Types  []string
	Type   string
	Next   string
}

// events lists the merchant's events, newest first, of one type if chosen.
//
// Store queries: one ListEvents (merchant, type?, id < cursor, limit 25), the API's
// GET /v1/events.
func (s *Dashboard) events(w http.ResponseWriter, r *http.Request, sess *session) {
	q := r.URL.Query()
	v := eventsView{Types: webhook.EventTypes, Type: q.Get("type")}
	if v.Type != "" && !slices.Contains(webhook.EventTypes, v.Type) {
		v.Type = ""
	}
	after := q.Get("starting_after")
	if after != "" && !charge.ValidID(charge.PrefixEvent, after) {
		after = ""
	}
	es, more, err := s.Webhooks.ListEvents(r.Context(), sess.Merchant, v.Type, pageSize, after)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	v.Events = es
	if more && len(es) > 0 {
		next := url.Values{"starting_after": {es[len(es)-1].ID}}
		if v.Type != "" {
			next.Set("type", v.Type)
		}
		v.Next = next.Encode()
	}
	s.render(w, r, http.StatusOK, "events", sess, &view{Title: "Events", Data: v})
}

// balanceRow is one currency of the balance.
type balanceRow struct {
	Currency           string
	Available, Pending int64
}

// balance is the merchant's balance per currency: available and pending.
//
// Store queries: one Balance (the merchant's ledger sums per currency and account).
func (s *Dashboard) balance(w http.ResponseWriter, r *http.Request, sess *session) {
	b, err := s.Balances.Get(r.Context(), sess.Merchant)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	var rows []balanceRow
	row := func(currency string) *balanceRow {
		for i := range rows {
			if rows[i].Currency == currency {
				return &rows[i]
			}
		}
		rows = append(rows, balanceRow{Currency: currency})
		return &rows[len(rows)-1]
	}
	for _, m := range b.Available {
		row(m.Currency).Available += m.Amount
	}
	for _, m := range b.Pending {
		row(m.Currency).Pending += m.Amount
	}
	slices.SortFunc(rows, func(a, b balanceRow) int { return strings.Compare(a.Currency, b.Currency) })
	s.render(w, r, http.StatusOK, "balance", sess, &view{Title: "Balance", Data: rows})
}
