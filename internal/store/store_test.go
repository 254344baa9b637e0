package store_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
)

// now returns the current time as the store gives it back: UTC, to the millisecond.
func now() time.Time {
	return time.Now().UTC().Truncate(time.Millisecond)
}

// pendingCharge returns a new pending charge of merchant.
func pendingCharge(merchant string) charge.Charge {
	t := now()
	desc := "order 42"
	return charge.Charge{
		ID:            charge.NewID(charge.PrefixCharge),
		Merchant:      merchant,
		Amount:        1500,
		Currency:      "usd",
		PaymentMethod: "pm_card_visa",
		Capture:       true,
		Status:        charge.StatusPending,
		Description:   &desc,
		Metadata:      map[string]string{"order": "42"},
		CreatedAt:     t,
		UpdatedAt:     t,
	}
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func chargeID(c charge.Charge) string { return c.ID }
func eventID(e charge.Event) string   { return e.ID }

func testInsertCharges(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	c1, c2 := pendingCharge(b.merchant), pendingCharge(b.merchant)
	existing, err := b.store.InsertCharges(ctx, []charge.Charge{c1})
	require.NoError(t, err)
	require.Empty(t, existing)

	// A redelivered command with a different copy, alongside a new charge.
	changed := c1
	changed.Amount = 9999
	changed.Status = charge.StatusFailed
	existing, err = b.store.InsertCharges(ctx, []charge.Charge{changed, c2})
	require.NoError(t, err)
	require.Equal(t, []string{c1.ID}, existing, "the ids already stored are reported")
	existing, err = b.store.InsertCharges(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, existing)

	got, err := b.store.GetCharge(ctx, b.merchant, c1.ID)
	require.NoError(t, err)
	require.Equal(t, c1, got, "the first copy stays")

	got, err = b.store.GetCharge(ctx, b.merchant, c2.ID)
	require.NoError(t, err)
	require.Equal(t, c2, got)
	require.Equal(t, charge.ObjectCharge, got.Public().Object)
}

// Workers racing on one redelivered batch: every write succeeds, one copy of each stays.
func testConcurrentInserts(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	var cs []charge.Charge
	var es []charge.Event
	for range 20 {
		c := pendingCharge(b.merchant)
		cs = append(cs, c)
		es = append(es, charge.NewEvent(c, charge.NewTransition(c, charge.StatusSucceeded, now(), c.Amount, "", "").Event))
	}
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _, err := b.store.InsertCharges(ctx, cs); errs <- err })
		wg.Go(func() { errs <- b.store.InsertEvents(ctx, es) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	got, _, err := b.store.ListCharges(ctx, b.merchant, charge.ListParams{Limit: 100})
	require.NoError(t, err)
	require.Len(t, got, len(cs))
	events, _, err := b.store.ListEvents(ctx, b.merchant, "", 100, "")
	require.NoError(t, err)
	require.Len(t, events, len(es))
}

func testGetChargeNotFound(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	c := pendingCharge(b.merchant)
	_, err := b.store.InsertCharges(ctx, []charge.Charge{c})
	require.NoError(t, err)

	_, err = b.store.GetCharge(ctx, "acct_other", c.ID)
	require.ErrorIs(t, err, charge.ErrNotFound, "another merchant's charge")

	_, err = b.store.GetCharge(ctx, b.merchant, charge.NewID(charge.PrefixCharge))
	require.ErrorIs(t, err, charge.ErrNotFound, "unknown id")
}

func testChargesByID(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	c1, c2 := pendingCharge(b.merchant), pendingCharge("acct_other")
	_, err := b.store.InsertCharges(ctx, []charge.Charge{c1, c2})
	require.NoError(t, err)

	missing := charge.NewID(charge.PrefixCharge)
	got, err := b.store.ChargesByID(ctx, []string{c1.ID, c2.ID, missing})
	require.NoError(t, err)
	require.Equal(t, map[string]charge.Charge{c1.ID: c1, c2.ID: c2}, got)

	got, err = b.store.ChargesByID(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, got)
}

func testListCharges(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	// 25 charges, oldest first; every third one succeeded; every fourth one made with
	// customer cus_4. Another merchant's charge sits among them, with the same customer,
	// and must never show.
	var all, succeeded, ofCustomer []charge.Charge
	customer := "cus_4"
	for i := range 25 {
		c := pendingCharge(b.merchant)
		if i%3 == 0 {
			c.Status = charge.StatusSucceeded
			succeeded = append(succeeded, c)
		}
		if i%4 == 0 {
			c.Customer = &customer
			ofCustomer = append(ofCustomer, c)
		}
		all = append(all, c)
		if i == 12 {
			other := pendingCharge("acct_other")
			other.Customer = &customer
			all = append(all, other)
		}
	}
	_, err := b.store.InsertCharges(ctx, all)
	require.NoError(t, err)
	all = slices.DeleteFunc(all, func(c charge.Charge) bool { return c.Merchant != b.merchant })
	slices.Reverse(all)
	slices.Reverse(succeeded)
	slices.Reverse(ofCustomer)

	// pages lists every page of p.Limit, following StartingAfter.
	pages := func(p charge.ListParams) (got []charge.Charge, more []bool) {
		for {
			page, hasMore, err := b.store.ListCharges(ctx, b.merchant, p)
			require.NoError(t, err)
			got = append(got, page...)
			more = append(more, hasMore)
			if !hasMore {
				return got, more
			}
			require.Len(t, page, p.Limit)
			p.StartingAfter = page[len(page)-1].ID
		}
	}

	got, more := pages(charge.ListParams{Limit: 10})
	require.Equal(t, []bool{true, true, false}, more)
	require.Equal(t, ids(all, chargeID), ids(got, chargeID), "newest first")
	require.Equal(t, all, got)

	got, more = pages(charge.ListParams{Limit: 4, Status: charge.StatusSucceeded})
	require.Equal(t, []bool{true, true, false}, more) // 9 charges: 4, 4, 1
	require.Equal(t, ids(succeeded, chargeID), ids(got, chargeID))

	got, more = pages(charge.ListParams{Limit: 3, Customer: customer})
	require.Equal(t, []bool{true, true, false}, more) // 7 charges: 3, 3, 1
	require.Equal(t, ids(ofCustomer, chargeID), ids(got, chargeID))
	got, _ = pages(charge.ListParams{Limit: 10, Customer: customer, Status: charge.StatusSucceeded})
	require.Equal(t, ids(slices.DeleteFunc(slices.Clone(ofCustomer), func(c charge.Charge) bool {
		return c.Status != charge.StatusSucceeded
	}), chargeID), ids(got, chargeID), "both filters")

	// Exactly a full last page: no more.
	page, hasMore, err := b.store.ListCharges(ctx, b.merchant, charge.ListParams{Limit: 5, StartingAfter: all[19].ID})
	require.NoError(t, err)
	require.False(t, hasMore)
	require.Equal(t, ids(all[20:], chargeID), ids(page, chargeID))

	// No limit: 10.
	page, hasMore, err = b.store.ListCharges(ctx, b.merchant, charge.ListParams{})
	require.NoError(t, err)
	require.True(t, hasMore)
	require.Len(t, page, 10)

	// Nothing: an empty, non-nil page.
	page, hasMore, err = b.store.ListCharges(ctx, "acct_nobody", charge.ListParams{Limit: 10})
	require.NoError(t, err)
	require.False(t, hasMore)
	require.NotNil(t, page)
	require.Empty(t, page)
}

// The transition log arbitrates: of two claims of the same step of a charge, the first
// wins and the second is not an error; the log reads back in sequence order.
func testClaimTransitions(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	a, other := pendingCharge(b.merchant), pendingCharge(b.merchant)
	at := now().Add(time.Second)
	authorize := charge.NewTransition(a, charge.StatusRequiresCapture, at, 0, "", "auth_1")
	rival := charge.NewTransition(a, charge.StatusFailed, at, 0, charge.FailureCardDeclined, "")
	require.Equal(t, authorize.ID, rival.ID, "the same step of the same charge has one id")
	lost, err := b.store.ClaimTransitions(ctx, []charge.Transition{authorize})
	require.NoError(t, err)
	require.Empty(t, lost)
	lost, err = b.store.ClaimTransitions(ctx, []charge.Transition{rival, charge.NewTransition(other, charge.StatusSucceeded, at, 10, "", "")})
	require.NoError(t, err)
	require.Equal(t, []string{a.ID}, lost, "the second claim of a step loses")
	lost, err = b.store.ClaimTransitions(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, lost)

	authorized := charge.Fold(a, []charge.Transition{authorize})
	intent := authorized.RequestCapture(at.Add(time.Second), a.Amount, 1)
	capture := authorized.Apply(intent).Settle(at.Add(2*time.Second), true, "cap_1", "")
	require.Equal(t, 2, intent.Sequence)
	require.Equal(t, 3, capture.Sequence)
	require.Equal(t, charge.EventChargeCaptured, capture.Event.Type)
	_, err = b.store.ClaimTransitions(ctx, []charge.Transition{intent, capture})
	require.NoError(t, err)

	log, err := b.store.TransitionsFrom(ctx, map[string]int{a.ID: 1, other.ID: 1, "ch_unknown": 1})
	require.NoError(t, err)
	require.Equal(t, []charge.Transition{authorize, intent, capture}, log[a.ID], "first claim wins, in sequence order")
	require.Len(t, log[other.ID], 1)
	require.Empty(t, log["ch_unknown"])
	later, err := b.store.TransitionsFrom(ctx, map[string]int{a.ID: 3})
	require.NoError(t, err)
	require.Equal(t, []charge.Transition{capture}, later[a.ID])
}

// SaveCharges writes a folded view only over an older one.
func testSaveCharges(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	c := pendingCharge(b.merchant)
	_, err := b.store.InsertCharges(ctx, []charge.Charge{c})
	require.NoError(t, err)
	at := now().Add(time.Second)
	authorize := charge.NewTransition(c, charge.StatusRequiresCapture, at, 0, "", "auth_3")
	v1 := charge.Fold(c, []charge.Transition{authorize})
	capture := charge.NewTransition(v1, charge.StatusSucceeded, at.Add(time.Second), 1000, "", "")
	v2 := charge.Fold(c, []charge.Transition{authorize, capture})

	require.NoError(t, b.store.SaveCharges(ctx, []charge.Charge{v2}))
	require.NoError(t, b.store.SaveCharges(ctx, []charge.Charge{v1}), "an older view is not an error")
	got, err := b.store.GetCharge(ctx, b.merchant, c.ID)
	require.NoError(t, err)
	if b.atomic {
		require.Equal(t, v2, got, "and does not overwrite a newer one")
	} else {
		// FerretDB writes by id alone: the older view lands, and the worker's read-back
		// against the log repairs it (worker.converge).
		require.Equal(t, v1, got)
		require.NoError(t, b.store.SaveCharges(ctx, []charge.Charge{v2}))
		got, err = b.store.GetCharge(ctx, b.merchant, c.ID)
		require.NoError(t, err)
	}
	require.Equal(t, charge.StatusSucceeded, got.Status)
	require.Equal(t, int64(1000), got.AmountCaptured)
	require.Equal(t, "auth_3", got.AuthorizationID, "kept when a later transition does not set it")
	require.Equal(t, []charge.EventRef{authorize.Event, capture.Event}, got.Events)
	require.EqualValues(t, 2, got.Version)

	declined := pendingCharge(b.merchant)
	_, err = b.store.InsertCharges(ctx, []charge.Charge{declined})
	require.NoError(t, err)
	fail := charge.NewTransition(declined, charge.StatusFailed, at, 0, charge.FailureCardDeclined, "")
	require.NoError(t, b.store.SaveCharges(ctx, []charge.Charge{charge.Fold(declined, []charge.Transition{fail})}))
	got, err = b.store.GetCharge(ctx, b.merchant, declined.ID)
	require.NoError(t, err)
	require.Equal(t, charge.FailureCardDeclined, *got.FailureCode)
	require.Equal(t, charge.FailureMessage(charge.FailureCardDeclined), *got.FailureMessage)
}

func testEvents(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	// One event per charge, types alternating, oldest first.
	var events, failed []charge.Event
	for i := range 7 {
		c := pendingCharge(b.merchant)
		to, captured, code := charge.StatusSucceeded, c.Amount, ""
		if i%2 == 1 {
			to, captured, code = charge.StatusFailed, 0, charge.FailureInsufficientFunds
		}
		tr := charge.NewTransition(c, to, now(), captured, code, "")
		c.Status = to
		c.Events = []charge.EventRef{tr.Event}
		e := charge.NewEvent(c, tr.Event)
		events = append(events, e)
		if to == charge.StatusFailed {
			failed = append(failed, e)
		}
	}
	other := pendingCharge("acct_other")
	otherEvent := charge.NewEvent(other, charge.NewTransition(other, charge.StatusSucceeded, now(), other.Amount, "", "").Event)

	require.NoError(t, b.store.InsertEvents(ctx, append(events[:4:4], otherEvent)))
	// Again, overlapping, with a changed copy: no error, nothing duplicated or overwritten.
	changed := events[0]
	changed.Type = charge.EventChargeCanceled
	require.NoError(t, b.store.InsertEvents(ctx, append([]charge.Event{changed}, events[1:]...)))
	require.NoError(t, b.store.InsertEvents(ctx, nil))

	got, err := b.store.GetEvent(ctx, b.merchant, events[0].ID)
	require.NoError(t, err)
	require.Equal(t, events[0].Public(), got.Public())
	require.Equal(t, charge.ObjectEvent, got.Public().Object)
	require.Equal(t, charge.ObjectCharge, got.Public().Data.Object.Object)

	_, err = b.store.GetEvent(ctx, "acct_other", events[0].ID)
	require.ErrorIs(t, err, charge.ErrNotFound, "another merchant's event")
	_, err = b.store.GetEvent(ctx, b.merchant, charge.NewID(charge.PrefixEvent))
	require.ErrorIs(t, err, charge.ErrNotFound, "unknown id")

	slices.Reverse(events)
	slices.Reverse(failed)

	list, hasMore, err := b.store.ListEvents(ctx, b.merchant, "", 100, "")
	require.NoError(t, err)
	require.False(t, hasMore)
	require.Equal(t, ids(events, eventID), ids(list, eventID), "one copy each, newest first")

	list, hasMore, err = b.store.ListEvents(ctx, b.merchant, charge.EventChargeFailed, 2, "")
	require.NoError(t, err)
	require.True(t, hasMore)
	require.Equal(t, ids(failed[:2], eventID), ids(list, eventID))
	list, hasMore, err = b.store.ListEvents(ctx, b.merchant, charge.EventChargeFailed, 2, list[1].ID)
	require.NoError(t, err)
	require.False(t, hasMore)
	require.Equal(t, ids(failed[2:], eventID), ids(list, eventID))

	list, hasMore, err = b.store.ListEvents(ctx, b.merchant, charge.EventChargeCanceled, 10, "")
	require.NoError(t, err)
	require.False(t, hasMore)
	require.NotNil(t, list)
	require.Empty(t, list)
}

func testDeadLetters(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	got, err := b.store.DeadLetters(ctx)
	require.NoError(t, err)
	require.Empty(t, got)

	id := charge.NewID(charge.PrefixCharge)
	d1 := charge.DeadLetter{
		ID:       id + ":" + string(charge.CommandCreate),
		Subject:  "billing.commands.charge.create",
		Data:     []byte(`{"type":"charge.create"}`),
		Reason:   "processor unavailable",
		Attempts: 5,
		At:       now(),
	}
	d2 := d1
	d2.ID = charge.NewID(charge.PrefixCharge) + ":" + string(charge.CommandCreate)
	d2.Headers = map[string]string{"Billing-Merchant": "merchant_1"} // kept for a replay

	require.NoError(t, b.store.InsertDeadLetters(ctx, []charge.DeadLetter{d1}))
	changed := d1
	changed.Reason = "something else"
	changed.Attempts = 6
	require.NoError(t, b.store.InsertDeadLetters(ctx, []charge.DeadLetter{changed, d2}))
	require.NoError(t, b.store.InsertDeadLetters(ctx, nil))

	got, err = b.store.DeadLetters(ctx)
	require.NoError(t, err)
	want := []charge.DeadLetter{d1, d2}
	slices.SortFunc(want, func(a, b charge.DeadLetter) int { return strings.Compare(a.ID, b.ID) })
	require.Equal(t, want, got)

	// A replayed dead letter is deleted; deleting it again is no error.
	require.NoError(t, b.store.DeleteDeadLetter(ctx, d1.ID))
	require.NoError(t, b.store.DeleteDeadLetter(ctx, d1.ID))
	got, err = b.store.DeadLetters(ctx)
	require.NoError(t, err)
	require.Equal(t, []charge.DeadLetter{d2}, got)
}
