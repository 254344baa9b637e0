// Package recordtest builds one record of every kind a store keeps, related to each other
// as the services relate them, for the tests that drive every method of an engine.
package recordtest

import (
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/webhook"
)

// Records are one of each: a pending charge, its authorization, the charge it leaves,
// that transition's event, a refund, an endpoint and a delivery of the event to it.
type Records struct {
	Charge     charge.Charge
	Transition charge.Transition
	Settled    charge.Charge
	Event      charge.Event
	Refund     charge.Refund
	Endpoint   webhook.Endpoint
	Delivery   webhook.Delivery
}

// New returns Records of merchant, made at at.
func New(merchant string, at time.Time) Records {
	c := charge.Charge{ID: charge.NewID(charge.PrefixCharge), Merchant: merchant, Amount: 1000, Currency: "usd",
		Status: charge.StatusPending, CreatedAt: at, UpdatedAt: at}
	tr := charge.NewTransition(c, charge.StatusSucceeded, at, c.Amount, "", "auth_1")
	settled := charge.Fold(c, []charge.Transition{tr})
	ev := charge.NewEvent(settled, tr.Event)
	endpoint := webhook.Endpoint{ID: charge.NewID(charge.PrefixWebhookEndpoint), Merchant: merchant, URL: "https://example.com",
		EnabledEvents: []string{"*"}, Status: webhook.StatusEnabled, CreatedAt: at, UpdatedAt: at}
	return Records{
		Charge: c, Transition: tr, Settled: settled, Event: ev,
		Refund: charge.Refund{ID: charge.NewID(charge.PrefixRefund), Merchant: merchant, Charge: c.ID, Amount: 10, Currency: "usd",
			Status: charge.RefundSucceeded, CreatedAt: at, UpdatedAt: at},
		Endpoint: endpoint,
		Delivery: webhook.Delivery{ID: charge.NewID(charge.PrefixWebhookDelivery), Merchant: merchant, Endpoint: endpoint.ID,
			Event: ev.ID, Attempt: 1, CreatedAt: at, Key: ev.ID + ":" + endpoint.ID},
	}
}
