package mongostore

import (
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/webhook"
)

// sample is a domain value as the engine stores it, named for the golden file.
type sample struct {
	name  string
	value any
}

// samples are every kind of value the engine stores, each filled in every field and
// left as empty as it can be, so that the golden file pins the stored shape of each.
func samples() []sample {
	at := time.Date(2026, 11, 25, 23, 8, 25, 123_000_000, time.UTC)
	later := at.Add(90 * time.Second)
	str := func(s string) *string { return &s }
	code := 503

	refund := charge.Refund{
		ID: "re_1", Object: charge.ObjectRefund, Merchant: "acct_1", Charge: "ch_1", Amount: 1500,
		Currency: "usd", Status: charge.RefundFailed, FailureCode: str("amount_too_large"),
		Reason: str("requested_by_customer"), CreatedAt: at, UpdatedAt: later,
		Reference: "rf_ref", Delivery: 3, Version: 4,
	}
	eventRef := charge.EventRef{
		ID: "evt_1", Type: charge.EventRefundFailed, Sequence: 2, CreatedAt: later,
		Status: charge.StatusSucceeded, AmountCaptured: 4000, AmountRefunded: 1000,
		FailureCode: "amount_too_large", RefundID: "re_1",
	}
	full := charge.Charge{
		ID: "ch_1", Object: charge.ObjectCharge, Merchant: "acct_1", Amount: 5000, Currency: "usd",
		PaymentMethod: "pm_card_visa", Capture: false, Status: charge.StatusRequiresCapture,
		AmountCaptured: 4000, AmountRefunded: 1000, FailureCode: str("card_declined"),
		FailureMessage: str("Your card was declined."), Description: str("order 6735"),
		Customer: str("cus_1"), Metadata: charge.Metadata{"order.id": "6735", "$ref": "x", "a": ""},
		CreatedAt: at, UpdatedAt: later, AuthorizationID: "auth_1",
		Events:    []charge.EventRef{{ID: "evt_0", Type: charge.EventChargeAuthorized, Sequence: 1, CreatedAt: at, Status: charge.StatusRequiresCapture}, eventRef},
		Version:   5,
		Operation: &charge.Operation{Kind: charge.KindCaptureRequested, Amount: 4000, Delivery: 2},
		Ended:     []charge.TransitionKind{charge.KindCancelRequested},
		Refunds:   []charge.Refund{refund, {ID: "re_2", Charge: "ch_1", Amount: 1, Status: charge.RefundPending}},
	}
	endpoint := webhook.Endpoint{
		ID: "we_1", Object: webhook.ObjectEndpoint, Merchant: "acct_1", URL: "https://example.com/hooks",
		EnabledEvents: []string{charge.EventChargeSucceeded, charge.EventRefundFailed},
		Description:   str("orders"), Status: webhook.StatusDisabled, Secret: "whsec_plain",
		CreatedAt: at, UpdatedAt: later,
		Secrets: []webhook.SealedSecret{
			{Sealed: []byte("sealed-2"), CreatedAt: later},
			{Sealed: []byte("sealed-1"), CreatedAt: at, ExpiresAt: &later},
		},
		Version: 3, FailingSince: &at, DisabledReason: "failing",
	}

	return []sample{
		{"charge", full},
		{"charge, empty", charge.Charge{}},
		{"charge, empty metadata", charge.Charge{ID: "ch_2", Metadata: charge.Metadata{}}},
		{"transition", charge.Transition{
			ID: "ch_1/3", ChargeID: "ch_1", Sequence: 3, Kind: charge.KindRefundFailed,
			From: charge.StatusSucceeded, To: charge.StatusSucceeded, At: later, AmountCaptured: 4000,
			Amount: 1500, AuthorizationID: "auth_1", Reference: "rf_ref", FailureCode: "amount_too_large",
			Refund: &refund, RefundID: "re_1", Delivery: 3, Operation: "cmd_1", Event: eventRef,
		}},
		{"transition, empty", charge.Transition{}},
		{"refund", refund},
		{"refund, empty", charge.Refund{}},
		{"event", charge.NewEvent(full, eventRef)},
		{"event, empty", charge.Event{}},
		{"ledger entry", charge.LedgerEntry{
			ID: "ch_1/3/a", Transaction: "ch_1/3", Merchant: "acct_1", ChargeID: "ch_1", RefundID: "re_1",
			Kind: charge.KindRefunded, Account: charge.AccountAvailable, Currency: "usd", Amount: -1500, CreatedAt: at,
		}},
		{"ledger entry, empty", charge.LedgerEntry{}},
		{"dead letter", charge.DeadLetter{
			ID: "charges.refund.ch_1", Subject: "charges.refund.ch_1", Data: []byte(`{"amount":1}`),
			Headers: map[string]string{"Billing-Merchant": "acct_1"}, Reason: "processing_error", Attempts: 9, At: at,
		}},
		{"dead letter, empty", charge.DeadLetter{}},
		{"endpoint", endpoint},
		{"endpoint, empty", webhook.Endpoint{}},
		{"delivery", webhook.Delivery{
			ID: "whd_1", Object: webhook.ObjectDelivery, Merchant: "acct_1", Endpoint: "we_1", Event: "evt_1",
			Attempt: 2, ResponseStatus: &code, DurationMS: 120, Error: str("HTTP 503"), NextAttemptAt: &later,
			CreatedAt: at, Key: "evt_1/we_1",
		}},
		{"delivery, empty", webhook.Delivery{}},
	}
}
