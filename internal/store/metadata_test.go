package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
)

// metadataKeys are keys of every shape docs/api.md allows: any printable text, those that
// MongoDB and FerretDB refuse as field names included.
var metadataKeys = []string{
	"order_id", "$where", "$set", "$", "a.b", ".", "..", "order.id", "$ref", "a b", " ",
	"_id", "\u00e9t\u00e9", "\u65e5\u672c", "\U0001F600", `"`, `\`, "{}", "[0]", "a$b", "x.$y",
}

func testMetadataKeysOfEveryShape(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	c := pendingCharge("merchant_meta")
	c.Metadata = map[string]string{}
	for i, k := range metadataKeys {
		c.Metadata[k] = "value " + k + string(rune('a'+i))
	}
	_, err := b.store.InsertCharges(t.Context(), []charge.Charge{c})
	require.NoError(t, err)
	got, err := b.store.GetCharge(t.Context(), c.Merchant, c.ID)
	require.NoError(t, err)
	require.Equal(t, c.Metadata, got.Metadata)

	e := charge.NewEvent(c, charge.EventRef{ID: charge.NewID(charge.PrefixEvent), Type: charge.EventChargeSucceeded, Sequence: 1, CreatedAt: c.CreatedAt, Status: charge.StatusSucceeded})
	require.NoError(t, b.store.InsertEvents(t.Context(), []charge.Event{e}))
	ev, err := b.store.GetEvent(t.Context(), c.Merchant, e.ID)
	require.NoError(t, err)
	require.Equal(t, c.Metadata, ev.Data.Object.Metadata)
}
