package devstack

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/processor"
)

// TriggerScopes are the scopes the token of a Trigger needs.
var TriggerScopes = []string{"charges:write", "charges:read", "events:read"}

// triggerAmount is the amount of the charges a Trigger makes, in cents of usd.
const triggerAmount = 2000

// triggerPlan is how a Trigger makes its event happen: a charge with that payment method,
// captured at once or not, then a follow-up on it.
type triggerPlan struct {
	method  string
	capture bool
	// settled is the status the charge reaches before the follow-up.
	settled string
	// followUp, if any, is what to do to the settled charge.
	followUp func(ctx context.Context, tr *triggerRun, id string) error
}

// triggerPlans are the plans by event type: every event of docs/api.md, "Events and
// webhooks", with the simulated processor's payment methods.
var triggerPlans = map[string]triggerPlan{
	charge.EventChargeSucceeded:  {method: "pm_card_visa", capture: true, settled: "succeeded"},
	charge.EventChargeFailed:     {method: processor.MethodDeclined, capture: true, settled: "failed"},
	charge.EventChargeAuthorized: {method: "pm_card_visa", capture: false, settled: "requires_capture"},
	charge.EventChargeCaptured: {method: "pm_card_visa", capture: false, settled: "requires_capture",
		followUp: func(ctx context.Context, tr *triggerRun, id string) error {
			if _, err := tr.post(ctx, "/v1/charges/"+url.PathEscape(id)+"/capture", map[string]any{}); err != nil {
				return err
			}
			tr.printf("Captured %s\n", id)
			return nil
		}},
	charge.EventChargeCanceled: {method: "pm_card_visa", capture: false, settled: "requires_capture",
		followUp: func(ctx context.Context, tr *triggerRun, id string) error {
			if _, err := tr.post(ctx, "/v1/charges/"+url.PathEscape(id)+"/cancel", map[string]any{}); err != nil {
				return err
			}
			tr.printf("Canceled %s\n", id)
			return nil
		}},
	charge.EventChargeRefunded: {method: "pm_card_visa", capture: true, settled: "succeeded",
		followUp: func(ctx context.Context, tr *triggerRun, id string) error {
			r, err := tr.post(ctx, "/v1/refunds", map[string]any{"charge": id, "reason": "requested_by_customer"})
			if err != nil {
				return err
			}
			tr.printf("Refunded %s: refund %s\n", id, r.ID)
			return nil
		}},
	// A refund of an authorization waits for its capture; the charge canceled instead,
	// nothing is left to refund, and the refund fails (amount_too_large).
	charge.EventRefundFailed: {method: "pm_card_visa", capture: false, settled: "requires_capture",
		followUp: func(ctx context.Context, tr *triggerRun, id string) error {
			r, err := tr.post(ctx, "/v1/refunds", map[string]any{"charge": id, "amount": triggerAmount})
			if err != nil {
				return err
			}
			tr.printf("Refund %s of %s accepted; it waits for a capture\n", r.ID, id)
			if _, err := tr.post(ctx, "/v1/charges/"+url.PathEscape(id)+"/cancel", map[string]any{}); err != nil {
				return err
			}
			tr.printf("Canceled %s: nothing left for refund %s to refund\n", id, r.ID)
			return nil
		}},
}

// TriggerEvents are the event types a Trigger can emit, sorted.
func TriggerEvents() []string {
	events := make([]string, 0, len(triggerPlans))
	for e := range triggerPlans {
		events = append(events, e)
	}
	slices.Sort(events)
	return events
}

// CheckTriggerEvent returns an error listing the supported events if a Trigger cannot
// emit event.
func CheckTriggerEvent(event string) error {
	if _, ok := triggerPlans[event]; !ok {
		return fmt.Errorf("unknown event %q; supported: %s", event, strings.Join(TriggerEvents(), ", "))
	}
	return nil
}

// Trigger makes the billing API emit an event, like a payment provider's CLI: it creates
// a charge (and captures, cancels or refunds it) whose outcome, on the simulated
// processor, is that event, then waits until the event is listed for the charge.
type Trigger struct {
	// APIURL is the base URL of the billing API, such as http://localhost:8080.
	APIURL string
	// Token is a bearer token with TriggerScopes.
	Token string
	// HTTPClient calls the API; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Timeout bounds the whole run. Defaults to a minute.
	Timeout time.Duration
}

// TriggerResult is what a Trigger did: the charge it made and the event it saw.
type TriggerResult struct {
	ChargeID string
	EventID  string
}

// Run makes event happen, printing each step on out.
func (t *Trigger) Run(ctx context.Context, event string, out io.Writer) (TriggerResult, error) {
	if err := CheckTriggerEvent(event); err != nil {
		return TriggerResult{}, err
	}
	plan := triggerPlans[event]
	if err := checkHTTPURL("api", t.APIURL); err != nil {
		return TriggerResult{}, err
	}
	client := t.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(t.Timeout, time.Minute))
	defer cancel()
	tr := &triggerRun{api: strings.TrimRight(t.APIURL, "/"), token: t.Token, client: client, out: out}

	ch, err := tr.post(ctx, "/v1/charges", map[string]any{
		"amount": triggerAmount, "currency": "usd", "payment_method": plan.method, "capture": plan.capture,
		"description": "devstack trigger " + event,
	})
	if err != nil {
		return TriggerResult{}, err
	}
	tr.printf("Created charge %s (%s, capture %t)\n", ch.ID, plan.method, plan.capture)
	status, err := tr.awaitCharge(ctx, ch.ID)
	if err != nil {
		return TriggerResult{ChargeID: ch.ID}, err
	}
	if status != plan.settled {
		return TriggerResult{ChargeID: ch.ID}, fmt.Errorf("charge %s is %s, not %s: is the API's processor the simulated one?", ch.ID, status, plan.settled)
	}
	tr.printf("Charge %s is %s\n", ch.ID, status)
	if plan.followUp != nil {
		if err := plan.followUp(ctx, tr, ch.ID); err != nil {
			return TriggerResult{ChargeID: ch.ID}, err
		}
	}
	evt, err := tr.awaitEvent(ctx, event, ch.ID)
	if err != nil {
		return TriggerResult{ChargeID: ch.ID}, err
	}
	tr.printf("Triggered %s: event %s for charge %s\n", event, evt, ch.ID)
	return TriggerResult{ChargeID: ch.ID, EventID: evt}, nil
}

// triggerRun is one run of a Trigger.
type triggerRun struct {
	api, token string
	client     *http.Client
	out        io.Writer
}

func (tr *triggerRun) printf(format string, args ...any) { fmt.Fprintf(tr.out, format, args...) }

// object is the part of a charge, refund or event the trigger reads.
type object struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Data   struct {
		Object struct {
			ID string `json:"id"`
		} `json:"object"`
	} `json:"data"`
}

// do calls the API and decodes its 2xx answer into v; any other answer is an error
// naming the problem.
func (tr *triggerRun) do(ctx context.Context, method, path string, body any, v any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	rctx, cancel := context.WithTimeout(ctx, apiTimeout+10*time.Second) // ?wait= holds up to 10 s
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, tr.api+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tr.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "devstack-trigger-"+rand.Text())
	}
	resp, err := tr.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var p problem
		_ = json.Unmarshal(raw, &p)
		return fmt.Errorf("%s %s: %s%s", method, path, resp.Status, p.describe())
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func (tr *triggerRun) post(ctx context.Context, path string, body map[string]any) (object, error) {
	var o object
	return o, tr.do(ctx, http.MethodPost, path, body, &o)
}

// awaitCharge returns the status of charge id once it is no longer pending.
func (tr *triggerRun) awaitCharge(ctx context.Context, id string) (string, error) {
	for {
		var c object
		if err := tr.do(ctx, http.MethodGet, "/v1/charges/"+url.PathEscape(id)+"?wait=10s", nil, &c); err != nil {
			return "", err
		}
		if c.Status != "pending" {
			return c.Status, nil
		}
		if err := pause(ctx); err != nil {
			return "", fmt.Errorf("charge %s still pending: %w", id, err)
		}
	}
}

// awaitEvent returns the id of the event of type typ of charge chargeID, once listed.
func (tr *triggerRun) awaitEvent(ctx context.Context, typ, chargeID string) (string, error) {
	for {
		var page struct {
			Data []object `json:"data"`
		}
		if err := tr.do(ctx, http.MethodGet, "/v1/events?limit=100&type="+url.QueryEscape(typ), nil, &page); err != nil {
			return "", err
		}
		for _, e := range page.Data {
			if e.Data.Object.ID == chargeID {
				return e.ID, nil
			}
		}
		if err := pause(ctx); err != nil {
			return "", fmt.Errorf("no %s event for charge %s yet: %w", typ, chargeID, err)
		}
	}
}

// pause waits a moment before polling again, or returns ctx's error.
func pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(200 * time.Millisecond):
		return nil
	}
}
