package dashboard

import (
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
)

func TestIDBeforeSortsByTime(t *testing.T) {
	t.Parallel()
	before := charge.NewID(charge.PrefixCharge)
	time.Sleep(2 * time.Millisecond)
	mid := time.Now()
	time.Sleep(2 * time.Millisecond)
	after := charge.NewID(charge.PrefixCharge)
	b := idBefore(mid)
	require.True(t, charge.ValidID(charge.PrefixCharge, b), b)
	require.Less(t, before, b)
	require.Less(t, b, after)
}

func TestMoney(t *testing.T) {
	t.Parallel()
	require.Equal(t, "19.99 USD", money(1999, "usd"))
	require.Equal(t, "0.05 EUR", money(5, "eur"))
	require.Equal(t, "-1.50 USD", money(-150, "usd"))
	require.Equal(t, "500 JPY", money(500, "jpy"))
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	enc := base64.RawURLEncoding.EncodeToString
	exp, ok := expiry("h." + enc([]byte(`{"exp": 1999999999}`)) + ".s")
	require.True(t, ok)
	require.Equal(t, time.Unix(1999999999, 0), exp)
	for _, bad := range []string{"", "a.b", "h.!!.s", "h." + enc([]byte(`{}`)) + ".s"} {
		_, ok := expiry(bad)
		require.False(t, ok, bad)
	}
}

func TestOwns(t *testing.T) {
	t.Parallel()
	require.True(t, Owns("/dashboard"))
	require.True(t, Owns("/dashboard/charges"))
	require.False(t, Owns("/dashboards"))
	require.False(t, Owns("/v1/charges"))
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]int{
		charge.ErrNotFound: http.StatusNotFound,
		charge.Invalid(charge.CodeResourceMissing, "charge", "no"): http.StatusNotFound,
		charge.Invalid(charge.CodeAmountTooLarge, "amount", "no"):  http.StatusBadRequest,
		charge.ErrOperationInProgress:                              http.StatusConflict,
		ingest.ErrKeyInUse:                                         http.StatusConflict,
		&ingest.KeyReusedError{Fields: []string{"body"}}:           http.StatusUnprocessableEntity,
		charge.ErrUnavailable:                                      http.StatusServiceUnavailable,
		http.ErrHandlerTimeout:                                     http.StatusInternalServerError,
	} {
		got, _ := describe(err)
		require.Equal(t, want, got, "%v", err)
	}
}

func TestPagesParse(t *testing.T) {
	t.Parallel()
	pages, err := parsePages()
	require.NoError(t, err)
	for _, name := range []string{"signin", "charges", "charge", "balance", "webhooks", "webhook", "events", "ops", "notfound", "forbidden", "error"} {
		require.Contains(t, pages, name)
	}
}
