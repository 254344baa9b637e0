package client_test

import (
	"context"
	"iter"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/client"
)

func visa(amount int64) client.ChargeParams {
	return client.ChargeParams{Amount: amount, Currency: "usd", PaymentMethod: "pm_card_visa"}
}

func TestCreateWaitAndReplay(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "", nil)
	ctx := t.Context()

	p := visa(1999)
	p.Description, p.Metadata = "Order 6735", map[string]string{"order.id": "6735"}
	var first client.Response
	ch, err := s.client.CreateCharge(ctx, p, client.WithIdempotencyKey("order-6735"), client.WithResponse(&first))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(ch.ID, "ch_"), ch.ID)
	require.Equal(t, client.StatusPending, ch.Status)
	require.Equal(t, http.StatusAccepted, first.StatusCode)
	require.Equal(t, "/v1/charges/"+ch.ID, first.Header.Get("Location"))
	require.Equal(t, "order-6735", first.IdempotencyKey)
	require.False(t, first.Replayed)
	require.True(t, strings.HasPrefix(first.RequestID, "req_"), first.RequestID)
	require.Equal(t, 1, first.Attempts)

	settled, err := s.client.WaitCharge(ctx, ch.ID, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, client.StatusSucceeded, settled.Status)
	require.Equal(t, int64(1999), settled.AmountCaptured)
	require.Equal(t, "Order 6735", settled.Description)
	require.Equal(t, map[string]string{"order.id": "6735"}, settled.Metadata)

	// The same key and body: the first answer again, and no second charge.
	var again client.Response
	replay, err := s.client.CreateCharge(ctx, p, client.WithIdempotencyKey("order-6735"), client.WithResponse(&again))
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, ch.ID, replay.ID)
	require.Equal(t, []string{ch.ID}, ids(t, s.client.ListCharges(ctx, client.ListChargesParams{})))

	// Without a key of the caller's, each call gets a key of its own: two charges.
	var made client.Response
	other, err := s.client.CreateCharge(ctx, p, client.WithResponse(&made))
	require.NoError(t, err)
	require.NotEqual(t, ch.ID, other.ID)
	require.NotEmpty(t, made.IdempotencyKey)
	require.NotEqual(t, "order-6735", made.IdempotencyKey)
}

func TestAuthorizeCaptureRefundBalance(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "", nil)
	ctx := t.Context()

	p := visa(5000)
	p.Capture = new(false)
	ch, err := s.client.CreateCharge(ctx, p)
	require.NoError(t, err)
	ch, err = s.client.WaitCharge(ctx, ch.ID, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, client.StatusRequiresCapture, ch.Status)

	_, err = s.client.CaptureCharge(ctx, ch.ID, client.CaptureParams{Amount: 4000})
	require.NoError(t, err)
	ch = awaitCharge(t, s.client, ch.ID, func(c *client.Charge) bool { return c.Status == client.StatusSucceeded })
	require.Equal(t, int64(4000), ch.AmountCaptured)

	re, err := s.client.CreateRefund(ctx, client.RefundParams{Charge: ch.ID, Amount: 1500, Reason: client.ReasonRequestedByCustomer})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(re.ID, "re_"), re.ID)
	require.Equal(t, client.StatusPending, re.Status)
	require.Eventually(t, func() bool {
		r, err := s.client.GetRefund(ctx, re.ID)
		return err == nil && r.Status == client.StatusSucceeded
	}, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { // read from the charge, which the worker updates next
		var got []string
		for r, err := range s.client.ListRefunds(ctx, client.ListRefundsParams{Charge: ch.ID}) {
			if err != nil {
				return false
			}
			got = append(got, r.ID)
		}
		return slices.Equal([]string{re.ID}, got)
	}, 30*time.Second, 20*time.Millisecond)

	b, err := s.client.GetBalance(ctx)
	require.NoError(t, err)
	require.Equal(t, []client.Money{{Amount: 2500, Currency: "usd"}}, b.Available)

	// A cancel of a captured charge is refused, and not retried.
	var resp client.Response
	_, err = s.client.CancelCharge(ctx, ch.ID, client.WithResponse(&resp))
	require.ErrorIs(t, err, client.ErrChargeNotCancelable)
	require.Equal(t, 1, resp.Attempts)

	// The events of the charge, newest first, in pages of one.
	want := []string{client.EventChargeRefunded, client.EventChargeCaptured, client.EventChargeAuthorized}
	var types []string
	require.Eventually(t, func() bool {
		types = nil
		for e, err := range s.client.ListEvents(ctx, client.ListEventsParams{ListParams: client.ListParams{Limit: 1}}) {
			if err != nil || e.Data.Object.ID != ch.ID {
				return false
			}
			types = append(types, e.Type)
		}
		return slices.Equal(want, types)
	}, 30*time.Second, 20*time.Millisecond, "events %v", types)
}

func TestCancelAndDecline(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "", nil)
	ctx := t.Context()

	p := visa(700)
	p.Capture = new(false)
	auth, err := s.client.CreateCharge(ctx, p)
	require.NoError(t, err)
	_, err = s.client.WaitCharge(ctx, auth.ID, 30*time.Second)
	require.NoError(t, err)
	_, err = s.client.CancelCharge(ctx, auth.ID)
	require.NoError(t, err)
	awaitCharge(t, s.client, auth.ID, func(c *client.Charge) bool { return c.Status == client.StatusCanceled })

	declined, err := s.client.CreateCharge(ctx, client.ChargeParams{Amount: 500, Currency: "usd", PaymentMethod: "pm_card_chargeDeclined"})
	require.NoError(t, err)
	declined, err = s.client.WaitCharge(ctx, declined.ID, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, client.StatusFailed, declined.Status)
	require.Equal(t, "card_declined", declined.FailureCode)
}

// WaitCharge returns the charge as it is once its time is up, without an error.
func TestWaitChargeEndsPending(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "", nil)
	p := visa(100)
	p.PaymentMethod = "pm_card_processingError" // retried by the worker: pending a while
	ch, err := s.client.CreateCharge(t.Context(), p)
	require.NoError(t, err)
	got, err := s.client.WaitCharge(t.Context(), ch.ID, 0)
	require.NoError(t, err)
	require.Equal(t, ch.ID, got.ID)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.client.WaitCharge(ctx, ch.ID, time.Minute)
	require.ErrorIs(t, err, context.Canceled)
}

func TestListsPageThrough(t *testing.T) {
	t.Parallel()
	var gets atomic.Int64
	f := newFront(t, func(_ int, _ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && r.URL.Path == "/v1/charges" {
			gets.Add(1)
		}
		return false
	})
	s := newSetup(t, f.URL, nil)
	ctx := t.Context()
	var want []string
	for i := range 25 {
		p := visa(int64(100 + i))
		if i%5 == 4 {
			p.PaymentMethod = "pm_card_chargeDeclined"
		}
		ch, err := s.client.CreateCharge(ctx, p)
		require.NoError(t, err)
		want = append([]string{ch.ID}, want...) // newest first
	}
	for _, id := range want { // lists show the charges a worker has taken up
		_, err := s.client.WaitCharge(ctx, id, 30*time.Second)
		require.NoError(t, err)
	}
	gets.Store(0)

	require.Equal(t, want, ids(t, s.client.ListCharges(ctx, client.ListChargesParams{ListParams: client.ListParams{Limit: 10}})))
	require.Equal(t, int64(3), gets.Load(), "25 charges, 10 a page")

	// Starting after one, and stopping early: no more pages than needed.
	gets.Store(0)
	var got []string
	for ch, err := range s.client.ListCharges(ctx, client.ListChargesParams{ListParams: client.ListParams{Limit: 4, StartingAfter: want[2]}}) {
		require.NoError(t, err)
		if got = append(got, ch.ID); len(got) == 6 {
			break
		}
	}
	require.Equal(t, want[3:9], got)
	require.Equal(t, int64(2), gets.Load())

	// A filter holds across pages.
	var failed int
	for ch, err := range s.client.ListCharges(ctx, client.ListChargesParams{Status: client.StatusFailed, ListParams: client.ListParams{Limit: 2}}) {
		require.NoError(t, err)
		require.Equal(t, client.StatusFailed, ch.Status)
		failed++
	}
	require.Equal(t, 5, failed)

	// An error ends the list, yielded once.
	var errs int
	for _, err := range s.client.ListCharges(ctx, client.ListChargesParams{ListParams: client.ListParams{Limit: 1000}}) {
		require.ErrorIs(t, err, client.ErrParameterInvalid)
		errs++
	}
	require.Equal(t, 1, errs)
}

// ids collects the ids of a list, failing the test on an error.
func ids[T client.Charge | client.Refund](t *testing.T, seq iter.Seq2[T, error]) []string {
	t.Helper()
	var out []string
	for v, err := range seq {
		require.NoError(t, err)
		switch v := any(v).(type) {
		case client.Charge:
			out = append(out, v.ID)
		case client.Refund:
			out = append(out, v.ID)
		}
	}
	return out
}

// awaitCharge reads the charge until done holds, with ?wait= between status changes.
func awaitCharge(t *testing.T, c *client.Client, id string, done func(*client.Charge) bool) *client.Charge {
	t.Helper()
	var ch *client.Charge
	require.Eventually(t, func() bool {
		var err error
		got, err := c.WaitCharge(t.Context(), id, time.Second)
		if err != nil {
			return false
		}
		ch = got
		return done(ch)
	}, 30*time.Second, 10*time.Millisecond)
	return ch
}
