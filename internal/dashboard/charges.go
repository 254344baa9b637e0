package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.jetify.com/typeid/base32"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
	"github.com/billing/billing/internal/webhook"
)

// pageSize is the rows of a list page; 100 at most.
const pageSize = 25

// chargesView is the charges page.
type chargesView struct {
	Charges  []charge.Charge
	Statuses []charge.Status
	Status   string
	Customer string
	From, To string
	Query    string
	// Next is the query of the next page, empty on the last.
	Next string
}

// charges is the list of the merchant's charges, newest first.
//
// Store queries: one ListCharges (merchant, status?, customer?, id < cursor, limit 25),
// the API's GET /v1/charges with a customer filter besides; indexed by (merchant, id),
// (merchant, status, id) and (merchant, customer, id). The date range
// rides on the same index: ids are UUIDv7, so "created before" is a cursor made from the
// date and "created from" ends the page at the first older charge.
func (s *Dashboard) charges(w http.ResponseWriter, r *http.Request, sess *session) {
	q := r.URL.Query()
	v := chargesView{
		Statuses: []charge.Status{charge.StatusPending, charge.StatusSucceeded, charge.StatusFailed, charge.StatusRequiresCapture, charge.StatusCanceled},
		Status:   q.Get("status"), Customer: strings.TrimSpace(q.Get("customer")), From: q.Get("created_from"), To: q.Get("created_to"), Query: strings.TrimSpace(q.Get("q")),
	}
	if v.Query != "" {
		// A search by id: the charge itself, or the same not-found page as any other id.
		http.Redirect(w, r, Prefix+"/charges/"+url.PathEscape(v.Query), http.StatusSeeOther)
		return
	}
	p := charge.ListParams{Limit: pageSize}
	if v.Status != "" {
		if !charge.Status(v.Status).Valid() {
			s.render(w, r, http.StatusBadRequest, "charges", sess, &view{Title: "Charges", Error: "Unknown status.", Data: v})
			return
		}
		p.Status = charge.Status(v.Status)
	}
	if v.Customer != "" {
		if utf8.RuneCountInString(v.Customer) > charge.MaxCustomerLen {
			s.render(w, r, http.StatusBadRequest, "charges", sess, &view{Title: "Charges", Error: "A customer is at most 255 characters.", Data: v})
			return
		}
		p.Customer = v.Customer
	}
	from, fromOK := day(v.From)
	to, toOK := day(v.To)
	if (v.From != "" && !fromOK) || (v.To != "" && !toOK) {
		s.render(w, r, http.StatusBadRequest, "charges", sess, &view{Title: "Charges", Error: "Dates are YYYY-MM-DD.", Data: v})
		return
	}
	if after := q.Get("starting_after"); after != "" {
		if !charge.ValidID(charge.PrefixCharge, after) {
			s.render(w, r, http.StatusBadRequest, "charges", sess, &view{Title: "Charges", Error: "Invalid cursor.", Data: v})
			return
		}
		p.StartingAfter = after
	} else if toOK {
		p.StartingAfter = idBefore(to.AddDate(0, 0, 1)) // the whole of the last day
	}
	list, more, err := s.Charges.List(r.Context(), sess.Merchant, p)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	if fromOK {
		if i := slices.IndexFunc(list, func(c charge.Charge) bool { return c.CreatedAt.Before(from) }); i >= 0 {
			list, more = list[:i], false
		}
	}
	v.Charges = list
	if more && len(list) > 0 {
		next := url.Values{}
		for _, k := range []string{"status", "customer", "created_from", "created_to"} {
			if q.Get(k) != "" {
				next.Set(k, q.Get(k))
			}
		}
		next.Set("starting_after", list[len(list)-1].ID)
		v.Next = next.Encode()
	}
	s.render(w, r, http.StatusOK, "charges", sess, &view{Title: "Charges", Data: v})
}

// day parses a YYYY-MM-DD date, in UTC.
func day(s string) (time.Time, bool) {
	t, err := time.Parse(time.DateOnly, s)
	return t, err == nil
}

// idBefore is the smallest charge id of time t: every charge created before t sorts
// below it, every one created at or after t above.
func idBefore(t time.Time) string {
	var u [16]byte
	ms := uint64(t.UnixMilli())
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 // version 7
	u[8] = 0x80 // variant RFC 9562
	return charge.PrefixCharge + "_" + base32.Encode(u)
}

// chargeView is one charge's page.
type chargeView struct {
	Charge      charge.Charge
	Transitions []charge.Transition
	Ledger      []charge.LedgerEntry
	Events      []charge.EventRef
	Deliveries  []webhook.Delivery
	// Capturable, Cancelable, Refundable say which forms are shown (with charges:write).
	Capturable, Cancelable bool
	Refundable             int64
	CanWrite               bool
	CanSeeDeliveries       bool
}

// charge is one charge: its fields, its transition log as a timeline, the ledger entries
// that log makes, its events, refunds, and the deliveries of its events.
//
// Store queries: GetCharge (by merchant and id; before a worker has stored it, the
// accepted command on the queue), TransitionsFrom (the charge's log, by charge id); with
// webhooks:manage, ListEndpoints (merchant, 10) and one ListDeliveries (endpoint, 100)
// per endpoint, filtered to the charge's events. Events and refunds are held by the
// charge itself; the ledger is computed from the log as the worker writes it.
func (s *Dashboard) charge(w http.ResponseWriter, r *http.Request, sess *session) {
	v, err := s.loadCharge(r.Context(), sess, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.render(w, r, http.StatusOK, "charge", sess, &view{Title: "Charge " + v.Charge.ID, Data: v, Notice: notice(r.URL.Query())})
}

func (s *Dashboard) loadCharge(ctx context.Context, sess *session, id string) (*chargeView, error) {
	c, err := s.Charges.Get(ctx, sess.Merchant, id)
	if err != nil {
		return nil, err
	}
	v := &chargeView{Charge: c, Events: c.Events, CanWrite: sess.Has(auth.ScopeChargesWrite)}
	v.Capturable = c.Status == charge.StatusRequiresCapture && c.Operation == nil && c.CheckCapture(c.Amount) == nil
	v.Cancelable = c.Status == charge.StatusRequiresCapture && c.Operation == nil && c.CheckCancel() == nil
	v.Refundable = c.Refundable()
	if c.Status == charge.StatusRequiresCapture {
		v.Refundable = c.Amount - c.AmountRefunded // a refund may wait for the capture
	}
	if c.Version > 0 {
		logs, err := s.Transitions.TransitionsFrom(ctx, map[string]int{c.ID: 0})
		if err != nil {
			return nil, err
		}
		v.Transitions = logs[c.ID]
		slices.SortFunc(v.Transitions, func(a, b charge.Transition) int { return a.Sequence - b.Sequence })
		v.Ledger = charge.Ledger(c, v.Transitions)
	}
	if sess.Has(auth.ScopeWebhooksManage) && len(c.Events) > 0 {
		v.CanSeeDeliveries = true
		v.Deliveries, err = s.deliveriesOf(ctx, sess.Merchant, c.Events)
		if err != nil {
			return nil, err
		}
	}
	return v, nil
}

// deliveriesOf finds the delivery attempts of events among the latest 100 attempts of
// each of the merchant's first 10 endpoints: the store keeps attempts by endpoint, and a
// bounded look beats a scan. Older attempts are on the endpoint's page.
func (s *Dashboard) deliveriesOf(ctx context.Context, merchant string, events []charge.EventRef) ([]webhook.Delivery, error) {
	ids := map[string]bool{}
	for _, e := range events {
		ids[e.ID] = true
	}
	eps, _, err := s.Webhooks.List(ctx, merchant, 10, "")
	if err != nil {
		return nil, err
	}
	var out []webhook.Delivery
	for _, e := range eps {
		ds, _, err := s.Webhooks.Deliveries(ctx, merchant, e.ID, 100, "")
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if ids[d.Event] {
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, func(a, b webhook.Delivery) int { return strings.Compare(b.ID, a.ID) })
	return out, nil
}

// waitCharge holds until the charge is no longer pending (25 s at most), then answers
// its status as JSON: what the charge page's script polls to know when to reload.
//
// Store queries: GetCharge, before and after the wait (Charges.Wait, the API's ?wait=).
func (s *Dashboard) waitCharge(w http.ResponseWriter, r *http.Request, sess *session) {
	c, err := s.Charges.Wait(r.Context(), sess.Merchant, r.PathValue("id"), 25*time.Second)
	if err != nil {
		status, _ := describe(err)
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"status": string(c.Status)})
}

// The outcomes an action reports on the page it returns to.
var notices = map[string]string{
	"capture":   "Capture accepted: the charge is captured shortly.",
	"cancel":    "Cancel accepted: the authorization is voided shortly.",
	"refund":    "Refund accepted: it settles shortly.",
	"replayed":  "This form was already submitted: nothing was done again.",
	"enabled":   "Endpoint enabled.",
	"disabled":  "Endpoint disabled.",
	"redeliver": "Redelivery queued.",
	"replay":    "Dead letter replayed.",
}

func notice(q url.Values) string {
	n := notices[q.Get("done")]
	if q.Get("replayed") == "1" {
		n = notices["replayed"]
	}
	return n
}

// formRequest describes a dashboard POST for the idempotency layer, as the API's request
// would be (method, path, canonical body), under the key the form was rendered with.
func formRequest(r *http.Request, sess *session, path string, body map[string]any) (ingest.Request, bool) {
	key := r.PostFormValue("idempotency_key")
	if !ingest.ValidKey(key) {
		return ingest.Request{}, false
	}
	data, _ := json.Marshal(body) // map keys sorted: canonical
	return ingest.Request{Merchant: sess.Merchant, Key: key, Method: http.MethodPost, Path: path, Body: data}, true
}

// done returns to page after an accepted action, saying what it did.
func done(w http.ResponseWriter, r *http.Request, page, what string, resp ingest.Response) {
	q := url.Values{"done": {what}}
	if resp.Replayed {
		q.Set("replayed", "1")
	}
	http.Redirect(w, r, page+"?"+q.Encode(), http.StatusSeeOther)
}

// actionFailed shows the charge page again with what went wrong.
func (s *Dashboard) actionFailed(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	status, msg := describe(err)
	if status == http.StatusNotFound || status >= 500 {
		s.fail(w, r, sess, err)
		return
	}
	v, lerr := s.loadCharge(r.Context(), sess, r.PathValue("id"))
	if lerr != nil {
		s.fail(w, r, sess, lerr)
		return
	}
	s.render(w, r, status, "charge", sess, &view{Title: "Charge " + v.Charge.ID, Data: v, Error: msg})
}

var errBadForm = charge.Invalid(charge.CodeParameterInvalid, "", "The form is incomplete: reload the page and try again.")

// capture captures a charge, in full or for the amount given (in minor units), through
// the API's idempotent service.
func (s *Dashboard) capture(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	var p charge.CaptureParams
	body := map[string]any{}
	if !s.formAmount(w, r, sess, &p.Amount, body) {
		return
	}
	s.chargeAction(w, r, sess, "capture", "/v1/charges/"+id+"/capture", body, p.Validate,
		func(ctx context.Context, req ingest.Request) (ingest.Response, error) {
			return s.Charges.Capture(ctx, req, id, &p)
		})
}

// cancel voids an authorization through the API's idempotent service.
func (s *Dashboard) cancel(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	s.chargeAction(w, r, sess, "cancel", "/v1/charges/"+id+"/cancel", map[string]any{}, nil,
		func(ctx context.Context, req ingest.Request) (ingest.Response, error) {
			return s.Charges.Cancel(ctx, req, id)
		})
}

// refund refunds a charge, in full or for the amount given, through Refunds.Create
// under the form's idempotency key: a double submit replays the first answer.
func (s *Dashboard) refund(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	p := charge.RefundParams{Charge: &id}
	body := map[string]any{"charge": id}
	if !s.formAmount(w, r, sess, &p.Amount, body) {
		return
	}
	if reason := r.PostFormValue("reason"); reason != "" {
		p.Reason, body["reason"] = &reason, reason
	}
	s.chargeAction(w, r, sess, "refund", "/v1/refunds", body, p.Validate,
		func(ctx context.Context, req ingest.Request) (ingest.Response, error) {
			return s.Refunds.Create(ctx, req, &p)
		})
}

// formAmount reads the form's optional amount (minor units) into *amount and the API
// body; a bad one shows the charge page with the error, and false.
func (s *Dashboard) formAmount(w http.ResponseWriter, r *http.Request, sess *session, amount **int64, body map[string]any) bool {
	raw := strings.TrimSpace(r.PostFormValue("amount"))
	if raw == "" {
		return true
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n <= 0 {
		s.actionFailed(w, r, sess, charge.Invalid(charge.CodeParameterInvalid, "amount", "The amount is a positive whole number of minor units (cents)."))
		return false
	}
	*amount, body["amount"] = &n, n
	return true
}

// chargeAction submits the form's action on a charge as the API request method POST
// path with body would be, under the form's idempotency key: validate (when not nil)
// checks the parameters first, call does it. Then it returns to the charge's page saying
// what it did, or shows the page with what went wrong.
func (s *Dashboard) chargeAction(w http.ResponseWriter, r *http.Request, sess *session, what, path string, body map[string]any,
	validate func() *charge.InvalidRequestError, call func(context.Context, ingest.Request) (ingest.Response, error)) {
	req, ok := formRequest(r, sess, path, body)
	if !ok {
		s.actionFailed(w, r, sess, errBadForm)
		return
	}
	if validate != nil {
		if invalid := validate(); invalid != nil {
			s.actionFailed(w, r, sess, invalid)
			return
		}
	}
	resp, err := call(r.Context(), req)
	if err != nil {
		s.actionFailed(w, r, sess, err)
		return
	}
	done(w, r, Prefix+"/charges/"+r.PathValue("id"), what, resp)
}
