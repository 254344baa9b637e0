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

// Ledger returns the ledger entries of n charges of merchant, in order, made at at: of
// every third, authorized, partly captured and partly refunded; of the next, paid at once;
// of the next, authorized and still held. Their currencies alternate between usd and eur.
func Ledger(merchant string, n int, at time.Time) []charge.LedgerEntry {
	var entries []charge.LedgerEntry
	for i := range n {
		c := charge.Charge{ID: charge.NewID(charge.PrefixCharge), Merchant: merchant, Amount: int64(1000 + i),
			Currency: []string{"usd", "eur"}[i%2], Status: charge.StatusPending, Capture: i%3 == 1, CreatedAt: at, UpdatedAt: at}
		var ts []charge.Transition
		step := func(f func(charge.Charge) charge.Transition) { ts = append(ts, f(charge.Fold(c, ts))) }
		switch i % 3 {
		case 0:
			r := charge.Refund{ID: charge.NewID(charge.PrefixRefund), Merchant: merchant, Charge: c.ID, Amount: 100,
				Currency: c.Currency, CreatedAt: at}
			step(func(v charge.Charge) charge.Transition {
				return charge.NewTransition(v, charge.StatusRequiresCapture, at, 0, "", "auth")
			})
			step(func(v charge.Charge) charge.Transition { return v.RequestCapture(at, 900, 1) })
			step(func(v charge.Charge) charge.Transition { return v.Settle(at, true, "cap", "") })
			step(func(v charge.Charge) charge.Transition { return v.ReserveRefund(at, r, 1) })
			step(func(v charge.Charge) charge.Transition { return v.RefundSucceeded(at, r.ID, "re") })
		case 1:
			step(func(v charge.Charge) charge.Transition {
				return charge.NewTransition(v, charge.StatusSucceeded, at, v.Amount, "", "auth")
			})
		case 2:
			step(func(v charge.Charge) charge.Transition {
				return charge.NewTransition(v, charge.StatusRequiresCapture, at, 0, "", "auth")
			})
		}
		entries = append(entries, charge.Ledger(c, ts)...)
	}
	return entries
}

// Balance returns the balance that entries (of one merchant) sum to: what a store must
// answer once it holds them.
func Balance(entries []charge.LedgerEntry) charge.Balance {
	sums := charge.BalanceSums{}
	for _, e := range entries {
		sums.Add(e.Currency, e.Account, e.Amount)
	}
	return sums.Balance()
}
