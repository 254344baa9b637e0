package charge

import (
	"testing"
	"time"
)

// A refund.failed event shows the refund's failure code on the refund, and the charge as
// it is: a succeeded charge has no failure code.
func TestRefundFailedEventKeepsTheChargesFailureCode(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	p := CreateParams{Amount: ptr(int64(500)), Currency: ptr("usd"), PaymentMethod: ptr("pm_card_visa")}
	c := p.Charge("ch_1", "m", func() time.Time { return now })
	auth := NewTransition(c, StatusSucceeded, now, 500, "", "auth_1")
	c = c.Apply(auth)

	r := Refund{ID: "re_1", Charge: c.ID, Amount: 900, Currency: "usd", CreatedAt: now}
	failed := c.RefundFailed(now, r, CodeAmountTooLarge)
	after := c.Apply(failed)
	ev := NewEvent(after, failed.Event)

	if ev.Type != EventRefundFailed {
		t.Fatalf("event type %q", ev.Type)
	}
	if ev.Data.Object.FailureCode != nil || ev.Data.Object.Status != StatusSucceeded {
		t.Errorf("the charge in the event has failure_code %v, status %s; want null, succeeded",
			deref(ev.Data.Object.FailureCode), ev.Data.Object.Status)
	}
	if ev.Data.Refund == nil || ev.Data.Refund.FailureCode == nil || *ev.Data.Refund.FailureCode != CodeAmountTooLarge {
		t.Errorf("the refund in the event is %+v, want failure_code %s", ev.Data.Refund, CodeAmountTooLarge)
	}

	// A charge's own failure still shows on its event.
	declined := NewTransition(p.Charge("ch_2", "m", func() time.Time { return now }), StatusFailed, now, 0, "card_declined", "")
	ev = NewEvent(p.Charge("ch_2", "m", func() time.Time { return now }).Apply(declined), declined.Event)
	if ev.Data.Object.FailureCode == nil || *ev.Data.Object.FailureCode != "card_declined" {
		t.Errorf("charge.failed shows failure_code %v", ev.Data.Object.FailureCode)
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
