package store_test

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/webhook"
)

// newEndpoint returns a new enabled endpoint of merchant with one sealed secret, and the
// plain secret set as in the answer to a create.
func newEndpoint(merchant string) webhook.Endpoint {
	t := now()
	desc := "orders"
	return webhook.Endpoint{
		ID:            charge.NewID(charge.PrefixWebhookEndpoint),
		Merchant:      merchant,
		URL:           "https://example.com/hooks",
		EnabledEvents: []string{charge.EventChargeSucceeded, charge.EventChargeFailed},
		Description:   &desc,
		Status:        webhook.StatusEnabled,
		Secret:        "whsec_plainSecretThatMustNeverBeStored",
		CreatedAt:     t,
		UpdatedAt:     t,
		Secrets:       []webhook.SealedSecret{{Sealed: []byte("sealed-1"), CreatedAt: t}},
		Version:       1,
	}
}

// stored returns e as the store gives it back: without the plain secret or object name.
func stored(e webhook.Endpoint) webhook.Endpoint {
	e.Secret, e.Object = "", ""
	return e
}

// newDelivery returns a new record of a failed attempt to deliver an event to endpoint,
// made at the given time.
func newDelivery(merchant, endpoint string, at time.Time) webhook.Delivery {
	status, msg, next := 503, "service unavailable", at.Add(time.Minute)
	event := charge.NewID(charge.PrefixEvent)
	return webhook.Delivery{
		ID:             charge.NewID(charge.PrefixWebhookDelivery),
		Merchant:       merchant,
		Endpoint:       endpoint,
		Event:          event,
		Attempt:        1,
		ResponseStatus: &status,
		DurationMS:     120,
		Error:          &msg,
		NextAttemptAt:  &next,
		CreatedAt:      at,
		Key:            event + ":" + endpoint,
	}
}

func endpointID(e webhook.Endpoint) string { return e.ID }
func deliveryID(d webhook.Delivery) string { return d.ID }

func testInsertEndpoint(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	e := newEndpoint(b.merchant)
	require.NoError(t, b.store.InsertEndpoint(ctx, e))
	// Again, with a changed copy: no error, the first copy stays.
	changed := e
	changed.URL = "https://example.com/other"
	changed.Status = webhook.StatusDisabled
	require.NoError(t, b.store.InsertEndpoint(ctx, changed))

	got, err := b.store.Endpoint(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, stored(e), got)
	require.Equal(t, webhook.ObjectEndpoint, got.Public().Object)

	// The plain secret is nowhere in the document; nor is the object name.
	raw := b.raw(t, "webhook_endpoints", e.ID)
	require.False(t, bytes.Contains(raw, []byte(e.Secret)), "plain secret stored: %s", raw)

	// By id whoever the merchant; an unknown id is not found.
	other := newEndpoint("acct_other")
	require.NoError(t, b.store.InsertEndpoint(ctx, other))
	got, err = b.store.Endpoint(ctx, other.ID)
	require.NoError(t, err)
	require.Equal(t, "acct_other", got.Merchant)
	_, err = b.store.Endpoint(ctx, charge.NewID(charge.PrefixWebhookEndpoint))
	require.ErrorIs(t, err, charge.ErrNotFound)
}

func testSaveEndpoint(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	e := newEndpoint(b.merchant)
	require.NoError(t, b.store.InsertEndpoint(ctx, e))

	// Rotated, failing, then disabled by the system: every mutable field changes.
	at := now().Add(time.Second)
	expires, failing, desc := at.Add(24*time.Hour), at.Add(-time.Hour), "all orders"
	v2 := stored(e)
	v2.URL = "https://example.com/v2"
	v2.EnabledEvents = []string{webhook.AllEvents}
	v2.Description = &desc
	v2.Status = webhook.StatusDisabled
	v2.Secrets = []webhook.SealedSecret{
		{Sealed: []byte("sealed-2"), CreatedAt: at},
		{Sealed: []byte("sealed-1"), CreatedAt: e.CreatedAt, ExpiresAt: &expires},
	}
	v2.FailingSince = &failing
	v2.DisabledReason = "failing for 3 days"
	v2.UpdatedAt = at
	v2.Version = 2
	// What is not mutable is not written, whatever the copy says.
	changed := v2
	changed.Merchant = "acct_other"
	changed.CreatedAt = at
	changed.Secret = "whsec_plainRotatedSecret"
	require.NoError(t, b.store.SaveEndpoint(ctx, changed))
	got, err := b.store.Endpoint(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, e.Secrets, got.Secrets, "an edit does not write secrets")
	require.Nil(t, got.FailingSince, "nor health")
	require.NoError(t, b.store.SetEndpointSecrets(ctx, e.ID, v2.Secrets, at))
	require.NoError(t, b.store.SetEndpointHealth(ctx, e.ID, &failing, v2.DisabledReason))
	// A stale copy saved again leaves the rotation and the disabling alone.
	stale := v2
	stale.Secrets, stale.FailingSince, stale.DisabledReason = e.Secrets, nil, ""
	require.NoError(t, b.store.SaveEndpoint(ctx, stale))
	got, err = b.store.Endpoint(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, v2, got)
	require.Equal(t, [][]byte{[]byte("sealed-2"), []byte("sealed-1")}, got.ActiveSecrets(at))
	require.False(t, bytes.Contains(b.raw(t, "webhook_endpoints", e.ID), []byte(changed.Secret)), "plain secret stored")

	// Enabled again: failing_since and disabled_reason cleared, description removed.
	v3 := v2
	v3.Status = webhook.StatusEnabled
	v3.FailingSince = nil
	v3.DisabledReason = ""
	v3.Description = nil
	// Secrets stay as they are: only SetEndpointSecrets writes them.
	v3.UpdatedAt = at.Add(time.Second)
	v3.Version = 3
	require.NoError(t, b.store.SaveEndpoint(ctx, v3))
	got, err = b.store.Endpoint(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, v3, got)

	// A save never brings back a deleted endpoint.
	missing := newEndpoint(b.merchant)
	require.ErrorIs(t, b.store.SaveEndpoint(ctx, missing), charge.ErrNotFound)
	_, err = b.store.Endpoint(ctx, missing.ID)
	require.ErrorIs(t, err, charge.ErrNotFound)
}

func testSetEndpointHealth(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	e := newEndpoint(b.merchant)
	require.NoError(t, b.store.InsertEndpoint(ctx, e))
	// A merchant's edit lands between the deliverer's read and its health writes.
	edited := stored(e)
	edited.URL = "https://example.com/edited"
	edited.UpdatedAt = now().Add(time.Second)
	edited.Version = 2
	require.NoError(t, b.store.SaveEndpoint(ctx, edited))

	// Failing: only failing_since changes.
	since := now()
	require.NoError(t, b.store.SetEndpointHealth(ctx, e.ID, &since, ""))
	want := edited
	want.FailingSince = &since
	got, err := b.store.Endpoint(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, want, got)

	// Answering again: cleared.
	require.NoError(t, b.store.SetEndpointHealth(ctx, e.ID, nil, ""))
	got, err = b.store.Endpoint(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, edited, got)

	// Failing too long: disabled, with the reason, and the edit still there.
	require.NoError(t, b.store.SetEndpointHealth(ctx, e.ID, &since, "failing"))
	want.Status = webhook.StatusDisabled
	want.DisabledReason = "failing"
	got, err = b.store.Endpoint(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, want, got)

	err = b.store.SetEndpointHealth(ctx, charge.NewID(charge.PrefixWebhookEndpoint), nil, "gone")
	require.ErrorIs(t, err, charge.ErrNotFound)
}

func testListEndpoints(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	// 7 endpoints, oldest first, with another merchant's among them.
	var all []webhook.Endpoint
	for i := range 7 {
		e := newEndpoint(b.merchant)
		require.NoError(t, b.store.InsertEndpoint(ctx, e))
		all = append(all, stored(e))
		if i == 3 {
			require.NoError(t, b.store.InsertEndpoint(ctx, newEndpoint("acct_other")))
		}
	}
	slices.Reverse(all)

	var got []webhook.Endpoint
	var more []bool
	after := ""
	for {
		page, hasMore, err := b.store.ListEndpoints(ctx, b.merchant, 3, after)
		require.NoError(t, err)
		got = append(got, page...)
		more = append(more, hasMore)
		if !hasMore {
			break
		}
		require.Len(t, page, 3)
		after = page[len(page)-1].ID
	}
	require.Equal(t, []bool{true, true, false}, more)
	require.Equal(t, ids(all, endpointID), ids(got, endpointID), "newest first")
	require.Equal(t, all, got)

	// No limit: 10.
	page, hasMore, err := b.store.ListEndpoints(ctx, b.merchant, 0, "")
	require.NoError(t, err)
	require.False(t, hasMore)
	require.Len(t, page, 7)

	page, hasMore, err = b.store.ListEndpoints(ctx, "acct_other", 10, "")
	require.NoError(t, err)
	require.False(t, hasMore)
	require.Len(t, page, 1)

	page, hasMore, err = b.store.ListEndpoints(ctx, "acct_nobody", 10, "")
	require.NoError(t, err)
	require.False(t, hasMore)
	require.NotNil(t, page)
	require.Empty(t, page)
}

func testEnabledEndpoints(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	a1, disabled, a2 := newEndpoint(b.merchant), newEndpoint(b.merchant), newEndpoint(b.merchant)
	disabled.Status = webhook.StatusDisabled
	other, unasked := newEndpoint("acct_other"), newEndpoint("acct_unasked")
	for _, e := range []webhook.Endpoint{a1, disabled, a2, other, unasked} {
		require.NoError(t, b.store.InsertEndpoint(ctx, e))
	}

	got, err := b.store.EnabledEndpoints(ctx, []string{b.merchant, "acct_other", "acct_nobody"})
	require.NoError(t, err)
	require.Equal(t, map[string][]webhook.Endpoint{
		b.merchant:   {stored(a1), stored(a2)},
		"acct_other": {stored(other)},
	}, got)

	got, err = b.store.EnabledEndpoints(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, got)
}

func testDisabledEndpoints(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	got, err := b.store.DisabledEndpoints(ctx, 10)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Empty(t, got)

	// Disabled by the merchant, by the deliverer, and of another merchant; enabled ones
	// among them, one of them failing.
	byMerchant, enabled, byHealth, failing, theirs := newEndpoint(b.merchant), newEndpoint(b.merchant),
		newEndpoint(b.merchant), newEndpoint(b.merchant), newEndpoint("acct_other")
	byMerchant.Status, theirs.Status = webhook.StatusDisabled, webhook.StatusDisabled
	for _, e := range []webhook.Endpoint{byMerchant, enabled, byHealth, failing, theirs} {
		require.NoError(t, b.store.InsertEndpoint(ctx, e))
	}
	since := now()
	require.NoError(t, b.store.SetEndpointHealth(ctx, byHealth.ID, &since, "failing for 3 days"))
	require.NoError(t, b.store.SetEndpointHealth(ctx, failing.ID, &since, ""))
	byHealth.Status, byHealth.FailingSince, byHealth.DisabledReason = webhook.StatusDisabled, &since, "failing for 3 days"

	got, err = b.store.DisabledEndpoints(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, []webhook.Endpoint{stored(theirs), stored(byHealth), stored(byMerchant)}, got, "every merchant's, newest first")

	got, err = b.store.DisabledEndpoints(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, []string{theirs.ID, byHealth.ID}, ids(got, endpointID), "the newest")
	got, err = b.store.DisabledEndpoints(ctx, 0)
	require.NoError(t, err)
	require.Len(t, got, 3, "no limit: 10")

	// Enabled again: gone from the list.
	again := stored(byMerchant)
	again.Status = webhook.StatusEnabled
	require.NoError(t, b.store.SaveEndpoint(ctx, again))
	got, err = b.store.DisabledEndpoints(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, []string{theirs.ID, byHealth.ID}, ids(got, endpointID))
}

func testDeleteEndpoint(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	e, kept := newEndpoint(b.merchant), newEndpoint(b.merchant)
	require.NoError(t, b.store.InsertEndpoint(ctx, e))
	require.NoError(t, b.store.InsertEndpoint(ctx, kept))

	require.NoError(t, b.store.DeleteEndpoint(ctx, e.ID))
	_, err := b.store.Endpoint(ctx, e.ID)
	require.ErrorIs(t, err, charge.ErrNotFound)
	require.ErrorIs(t, b.store.DeleteEndpoint(ctx, e.ID), charge.ErrNotFound, "deleted already")
	require.ErrorIs(t, b.store.DeleteEndpoint(ctx, charge.NewID(charge.PrefixWebhookEndpoint)), charge.ErrNotFound)

	list, _, err := b.store.ListEndpoints(ctx, b.merchant, 10, "")
	require.NoError(t, err)
	require.Equal(t, []string{kept.ID}, ids(list, endpointID))
}

func testRuns(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	key := charge.NewID(charge.PrefixEvent) + ":" + charge.NewID(charge.PrefixWebhookEndpoint)
	n, err := b.store.Run(ctx, key)
	require.NoError(t, err)
	require.Zero(t, n, "no run yet")

	require.NoError(t, b.store.SaveRun(ctx, key, 1))
	n, err = b.store.Run(ctx, key)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoError(t, b.store.SaveRun(ctx, key, 3))
	n, err = b.store.Run(ctx, key)
	require.NoError(t, err)
	require.Equal(t, 3, n)

	n, err = b.store.Run(ctx, key+":other")
	require.NoError(t, err)
	require.Zero(t, n, "runs are per key")

	// Workers racing on the first save of a key: none fails, one value stays.
	fresh := key + ":redelivery"
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { errs <- b.store.SaveRun(ctx, fresh, 2) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	n, err = b.store.Run(ctx, fresh)
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

func testDeliveries(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	// 5 attempts to one endpoint, oldest first, with attempts to another among them.
	endpoint, otherEndpoint := charge.NewID(charge.PrefixWebhookEndpoint), charge.NewID(charge.PrefixWebhookEndpoint)
	var all []webhook.Delivery
	for i := range 5 {
		d := newDelivery(b.merchant, endpoint, now())
		if i == 4 {
			d.ResponseStatus, d.Error, d.NextAttemptAt = nil, nil, nil // a success, last
		}
		require.NoError(t, b.store.InsertDelivery(ctx, d))
		all = append(all, d)
		if i%2 == 0 {
			require.NoError(t, b.store.InsertDelivery(ctx, newDelivery(b.merchant, otherEndpoint, now())))
		}
	}
	// Again, with a changed copy: no error, the first copy stays.
	changed := all[0]
	changed.Attempt = 9
	require.NoError(t, b.store.InsertDelivery(ctx, changed))
	slices.Reverse(all)

	page, hasMore, err := b.store.ListDeliveries(ctx, endpoint, 2, "")
	require.NoError(t, err)
	require.True(t, hasMore)
	require.Equal(t, all[:2], page, "newest first")
	require.Equal(t, webhook.ObjectDelivery, page[0].Public().Object)
	page, hasMore, err = b.store.ListDeliveries(ctx, endpoint, 2, page[1].ID)
	require.NoError(t, err)
	require.True(t, hasMore)
	require.Equal(t, ids(all[2:4], deliveryID), ids(page, deliveryID))
	page, hasMore, err = b.store.ListDeliveries(ctx, endpoint, 2, page[1].ID)
	require.NoError(t, err)
	require.False(t, hasMore)
	require.Equal(t, all[4:], page, "the first copy stays")

	page, hasMore, err = b.store.ListDeliveries(ctx, endpoint, 0, "")
	require.NoError(t, err)
	require.False(t, hasMore)
	require.Equal(t, ids(all, deliveryID), ids(page, deliveryID))

	page, _, err = b.store.ListDeliveries(ctx, otherEndpoint, 10, "")
	require.NoError(t, err)
	require.Len(t, page, 3)

	page, hasMore, err = b.store.ListDeliveries(ctx, charge.NewID(charge.PrefixWebhookEndpoint), 10, "")
	require.NoError(t, err)
	require.False(t, hasMore)
	require.NotNil(t, page)
	require.Empty(t, page)
}

func testDeleteBefore(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()

	cutoff := now().Add(-24 * time.Hour)
	event := func(at time.Time) charge.Event {
		c := pendingCharge(b.merchant)
		return charge.NewEvent(c, charge.NewTransition(c, charge.StatusSucceeded, at, c.Amount, "", "").Event)
	}
	endpoint := charge.NewID(charge.PrefixWebhookEndpoint)
	oldEvents := []charge.Event{event(cutoff.Add(-time.Hour)), event(cutoff.Add(-time.Millisecond))}
	newEvents := []charge.Event{event(cutoff), event(now())}
	require.NoError(t, b.store.InsertEvents(ctx, append(slices.Clone(oldEvents), newEvents...)))
	oldDeliveries := []webhook.Delivery{newDelivery(b.merchant, endpoint, cutoff.Add(-48*time.Hour)), newDelivery(b.merchant, endpoint, cutoff.Add(-time.Millisecond))}
	newDeliveries := []webhook.Delivery{newDelivery(b.merchant, endpoint, cutoff), newDelivery(b.merchant, endpoint, now())}
	for _, d := range append(slices.Clone(oldDeliveries), newDeliveries...) {
		require.NoError(t, b.store.InsertDelivery(ctx, d))
	}

	n, err := b.store.DeleteBefore(ctx, cutoff)
	require.NoError(t, err)
	require.EqualValues(t, len(oldEvents)+len(oldDeliveries), n)

	events, _, err := b.store.ListEvents(ctx, b.merchant, "", 100, "")
	require.NoError(t, err)
	require.ElementsMatch(t, ids(newEvents, eventID), ids(events, eventID), "the events from the cutoff on stay")
	deliveries, _, err := b.store.ListDeliveries(ctx, endpoint, 100, "")
	require.NoError(t, err)
	require.ElementsMatch(t, ids(newDeliveries, deliveryID), ids(deliveries, deliveryID), "the deliveries from the cutoff on stay")

	n, err = b.store.DeleteBefore(ctx, cutoff)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to delete")
}
