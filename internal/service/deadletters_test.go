package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/service"
)

// A message that can never be handled is a dead letter whichever consumer meets it (a
// command, an event to fan out, a webhook task): none is acknowledged and skipped, none
// dropped unseen. `worker deadletters` lists them, and replays one on request: here a
// command given up on, which the worker then settles.
func TestPoisonMessagesAreDeadLetteredAndReplayed(t *testing.T) {
	t.Parallel()
	s := startSystem(t, nil)
	ctx := t.Context()
	nc, err := nats.Connect(s.cfg.NATSURL)
	require.NoError(t, err)
	defer nc.Close()
	poison := map[string]string{
		"charges." + charge.NewID(charge.PrefixCharge) + ".create":          "undecodable",
		"events." + charge.NewID(charge.PrefixCharge) + ".charge.succeeded": "undecodable event",
		"webhooks.we_poison": "undecodable webhook task",
	}
	for subject := range poison {
		m := &nats.Msg{Subject: subject, Data: []byte("{not json"), Header: nats.Header{}}
		m.Header.Set("Billing-Merchant", "merchant_poison")
		require.NoError(t, nc.PublishMsg(m))
	}
	require.NoError(t, nc.Flush())

	var dead []charge.DeadLetter
	require.Eventually(t, func() bool {
		dead, err = s.store.DeadLetters(ctx)
		require.NoError(t, err)
		return len(dead) == len(poison)
	}, 20*time.Second, 50*time.Millisecond, "every poison message is dead-lettered")
	for _, d := range dead {
		require.Contains(t, d.Reason, poison[d.Subject], d.Subject)
		require.Equal(t, "{not json", string(d.Data))
		require.Equal(t, map[string]string{"Billing-Merchant": "merchant_poison"}, d.Headers, "kept for a replay")
	}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var out bytes.Buffer
	listed, err := service.DeadLetters(ctx, s.cfg, logger, nil, &out)
	require.NoError(t, err)
	require.Len(t, listed, len(poison))
	for _, d := range dead {
		require.Contains(t, out.String(), d.ID)
	}
	require.Contains(t, out.String(), "3 dead letters")

	// A command given up on (here recorded as a worker records it) is replayed: the
	// worker settles its charge, and the dead letter is gone.
	amount, cur, pm, capture := int64(700), "usd", "pm_card_visa", true
	id := charge.NewID(charge.PrefixCharge)
	params := charge.CreateParams{Amount: &amount, Currency: &cur, PaymentMethod: &pm, Capture: &capture}
	c := params.Charge(id, "merchant_poison", time.Now)
	data, err := json.Marshal(charge.Command{Type: charge.CommandCreate, Merchant: "merchant_poison", ChargeID: id, AcceptedAt: c.CreatedAt, Charge: &c})
	require.NoError(t, err)
	given := charge.DeadLetter{ID: "charges." + id + ".create", Subject: "charges." + id + ".create", Data: data,
		Reason: "refused for good: store unreachable then", Attempts: 9, At: time.Now()}
	require.NoError(t, s.store.InsertDeadLetters(ctx, []charge.DeadLetter{given}))
	out.Reset()
	_, err = service.DeadLetters(ctx, s.cfg, logger, []string{given.ID}, &out)
	require.NoError(t, err)
	require.Contains(t, out.String(), "replayed "+given.ID)
	require.Eventually(t, func() bool {
		got, err := s.store.GetCharge(context.Background(), "merchant_poison", id)
		return err == nil && got.Status == charge.StatusSucceeded
	}, 20*time.Second, 50*time.Millisecond, "the replayed command settles its charge")
	dead, err = s.store.DeadLetters(ctx)
	require.NoError(t, err)
	require.False(t, slices.ContainsFunc(dead, func(d charge.DeadLetter) bool { return d.ID == given.ID }))

	_, err = service.DeadLetters(ctx, s.cfg, logger, []string{"charges.nope.create"}, &out)
	require.ErrorContains(t, err, "no dead letter")
	require.True(t, strings.Contains(out.String(), "replayed"))
}
