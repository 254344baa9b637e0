package queue

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
)

// newEvent returns the seq-th event of a charge.
func newEvent(chargeID string, seq int) charge.Event {
	now := time.Now().UTC()
	c := charge.Charge{
		ID:        chargeID,
		Merchant:  "acct_1",
		Amount:    1000,
		Currency:  "usd",
		Status:    charge.StatusSucceeded,
		CreatedAt: now,
		UpdatedAt: now,
	}
	types := []string{charge.EventChargeAuthorized, charge.EventChargeCaptured, charge.EventChargeRefunded}
	return charge.NewEvent(c, charge.EventRef{
		ID:        charge.NewID(charge.PrefixEvent),
		Type:      types[(seq-1)%len(types)],
		Sequence:  seq,
		CreatedAt: now,
	})
}

func TestPublishEvents(t *testing.T) {
	t.Parallel()

	t.Run("StoredOnceEach", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		chargeID := charge.NewID(charge.PrefixCharge)
		es := []charge.Event{newEvent(chargeID, 1), newEvent(chargeID, 2), newEvent(chargeID, 3)}
		require.NoError(t, b.conn.PublishEvents(b.ctx, es))
		require.Equal(t, uint64(3), streamMsgs(t, b, StreamEvents))

		require.NoError(t, b.conn.PublishEvents(b.ctx, es))
		require.Equal(t, uint64(3), streamMsgs(t, b, StreamEvents))

		s, err := b.conn.js.Stream(b.ctx, StreamEvents)
		require.NoError(t, err)
		raw, err := s.GetLastMsgForSubject(b.ctx, "events."+chargeID+".charge.captured")
		require.NoError(t, err)
		var got map[string]any
		require.NoError(t, json.Unmarshal(raw.Data, &got))
		require.Equal(t, es[1].ID, got["id"])
		require.Equal(t, "event", got["object"])
		require.Equal(t, "charge.captured", got["type"])
		require.NotContains(t, got, "merchant")

		require.NoError(t, b.conn.PublishEvents(b.ctx, nil))
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		good := newEvent(charge.NewID(charge.PrefixCharge), 1)
		bad := newEvent("ch.x", 1)
		require.ErrorIs(t, b.conn.PublishEvents(b.ctx, []charge.Event{good, bad}), ErrInvalid)
		badType := newEvent(charge.NewID(charge.PrefixCharge), 1)
		badType.Type = "charge..x"
		require.ErrorIs(t, b.conn.PublishEvents(b.ctx, []charge.Event{badType}), ErrInvalid)
		require.Equal(t, uint64(0), streamMsgs(t, b, StreamEvents))
	})
}

func TestWaitForCharge(t *testing.T) {
	t.Parallel()

	t.Run("FiresOnPublish", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		chargeID := charge.NewID(charge.PrefixCharge)
		otherID := charge.NewID(charge.PrefixCharge)

		ch, stop, err := b.conn.WaitForCharge(b.ctx, chargeID)
		require.NoError(t, err)
		defer stop()

		// Another charge's event does not fire it.
		require.NoError(t, b.conn.PublishEvents(b.ctx, []charge.Event{newEvent(otherID, 1)}))
		require.Never(t, func() bool { return len(ch) > 0 }, 200*time.Millisecond, 10*time.Millisecond)

		// Published from another connection, as a worker would.
		worker := connect(t, b)
		require.NoError(t, worker.PublishEvents(b.ctx, []charge.Event{newEvent(chargeID, 1), newEvent(chargeID, 2)}))
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("no signal for the charge's events")
		}

		stop()
		stop() // idempotent
	})

	t.Run("InvalidID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, _, err := b.conn.WaitForCharge(b.ctx, "ch_1.>")
		require.ErrorIs(t, err, charge.ErrNotFound)
	})
}
