package client_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/client"
	"github.com/billing/billing/webhooksig"
)

// delivery is a webhook request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
}

// newReceiver is a webhook endpoint that answers 200 and hands over what it got.
func newReceiver(t *testing.T) (*httptest.Server, <-chan delivery) {
	t.Helper()
	got := make(chan delivery, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{header: r.Header.Clone(), body: body}
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func next(t *testing.T, got <-chan delivery) delivery {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook delivered in 30s")
		return delivery{}
	}
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "", nil)
	ctx := t.Context()
	srv, got := newReceiver(t)

	we, err := s.client.CreateWebhookEndpoint(ctx, client.WebhookEndpointParams{
		URL: srv.URL + "/hooks", EnabledEvents: []string{client.EventChargeSucceeded}, Description: "test",
	})
	require.NoError(t, err)
	require.Equal(t, "enabled", we.Status)
	require.NotEmpty(t, we.Secret)

	ch, err := s.client.CreateCharge(ctx, visa(2500))
	require.NoError(t, err)
	d := next(t, got)
	v, err := client.NewWebhookVerifier(we.Secret)
	require.NoError(t, err)
	ev, err := client.ParseWebhook(v, d.header, d.body)
	require.NoError(t, err)
	require.Equal(t, client.EventChargeSucceeded, ev.Type)
	require.Equal(t, ch.ID, ev.Data.Object.ID)
	require.Equal(t, client.StatusSucceeded, ev.Data.Object.Status)
	require.Equal(t, d.header.Get("webhook-id"), ev.ID)

	// Another secret does not verify it, nor does a changed body.
	other, err := client.NewWebhookVerifier("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	_, err = client.ParseWebhook(other, d.header, d.body)
	require.ErrorIs(t, err, webhooksig.ErrNoMatch)
	_, err = client.ParseWebhook(v, d.header, append(d.body, ' '))
	require.ErrorIs(t, err, webhooksig.ErrNoMatch)

	read, err := s.client.GetEvent(ctx, ev.ID)
	require.NoError(t, err)
	require.Equal(t, ev.Sequence, read.Sequence)

	// The attempt is listed.
	require.Eventually(t, func() bool {
		for a, err := range s.client.ListWebhookDeliveries(ctx, we.ID, client.ListParams{}) {
			if err == nil && a.Event == ev.ID && a.ResponseStatus == http.StatusOK {
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond)

	// After a rotation both secrets sign, from the answer on: the endpoint the worker read
	// for the delivery just made is not used again.
	rotated, err := s.client.RotateWebhookSecret(ctx, we.ID)
	require.NoError(t, err)
	require.NotEqual(t, we.Secret, rotated.Secret)
	vNew, err := client.NewWebhookVerifier(rotated.Secret)
	require.NoError(t, err)
	_, err = s.client.RedeliverEvent(ctx, ev.ID, client.RedeliverParams{Endpoint: we.ID})
	require.NoError(t, err)
	d = next(t, got)
	again, err := client.ParseWebhook(v, d.header, d.body)
	require.NoError(t, err, "the old secret still signs")
	require.Equal(t, ev.ID, again.ID)
	_, err = client.ParseWebhook(vNew, d.header, d.body)
	require.NoError(t, err, "the new secret signs the first delivery after the answer")

	// Update, list, delete.
	desc := "paused"
	up, err := s.client.UpdateWebhookEndpoint(ctx, we.ID, client.WebhookEndpointUpdate{Status: "disabled", Description: &desc})
	require.NoError(t, err)
	require.Equal(t, "disabled", up.Status)
	require.Equal(t, "paused", up.Description)
	require.Empty(t, up.Secret)
	var listed []string
	for e, err := range s.client.ListWebhookEndpoints(ctx, client.ListParams{}) {
		require.NoError(t, err)
		listed = append(listed, e.ID)
	}
	require.Equal(t, []string{we.ID}, listed)
	require.NoError(t, s.client.DeleteWebhookEndpoint(ctx, we.ID))
	_, err = s.client.GetWebhookEndpoint(ctx, we.ID)
	require.ErrorIs(t, err, client.ErrResourceMissing)
}
