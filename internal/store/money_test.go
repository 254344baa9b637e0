package store_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/store"
	"github.com/billing/billing/internal/store/recordtest"
)

// A charge authorized, partly captured and partly refunded: the ledger the domain derives
// from its history is stored once however often it is written, sums to zero, and the
// balance the store computes from it is captured less refunded, nothing pending.
func testLedgerAndBalance(t *testing.T, eng engine) {
	b := eng.setup(t)
	ctx := t.Context()

	c := pendingCharge(b.merchant)
	c.Capture = false
	r := charge.Refund{ID: charge.NewID(charge.PrefixRefund), Merchant: b.merchant, Charge: c.ID, Amount: 300, Currency: "usd", CreatedAt: now()}
	var ts []charge.Transition
	step := func(f func(charge.Charge) charge.Transition) {
		v := charge.Fold(c, ts)
		ts = append(ts, f(v))
	}
	step(func(v charge.Charge) charge.Transition {
		return charge.NewTransition(v, charge.StatusRequiresCapture, now(), 0, "", "auth_1")
	})
	authorized := charge.Fold(c, ts)

	// Another charge of another currency, still authorized: it is pending.
	jpy := pendingCharge(b.merchant)
	jpy.Capture, jpy.Currency, jpy.Amount = false, "jpy", 700
	jpyLedger := charge.Ledger(jpy, []charge.Transition{charge.NewTransition(jpy, charge.StatusRequiresCapture, now(), 0, "", "auth_2")})

	step(func(v charge.Charge) charge.Transition { return v.RequestCapture(now(), 1000, 1) })
	step(func(v charge.Charge) charge.Transition { return v.Settle(now(), true, "cap_1", "") })
	step(func(v charge.Charge) charge.Transition { return v.ReserveRefund(now(), r, 1) })
	step(func(v charge.Charge) charge.Transition { return v.RefundSucceeded(now(), r.ID, "re_1") })

	entries := charge.Ledger(c, ts)
	require.NoError(t, b.store.InsertLedgerEntries(ctx, append(entries, jpyLedger...)))
	require.NoError(t, b.store.InsertLedgerEntries(ctx, entries)) // again: no change, no error

	var stored []charge.LedgerEntry
	require.NoError(t, b.store.EachLedgerEntry(ctx, func(e charge.LedgerEntry) error {
		stored = append(stored, e)
		return nil
	}))
	require.Len(t, stored, len(entries)+len(jpyLedger))
	byTx := map[string]int64{}
	for _, e := range stored {
		byTx[e.Transaction] += e.Amount
	}
	for tx, sum := range byTx {
		require.Zero(t, sum, "transaction %s", tx)
	}

	bal, err := b.store.Balance(ctx, b.merchant)
	require.NoError(t, err)
	require.Equal(t, []charge.Money{{Amount: 0, Currency: "jpy"}, {Amount: 700, Currency: "usd"}}, bal.Available)
	require.Equal(t, []charge.Money{{Amount: 700, Currency: "jpy"}, {Amount: 0, Currency: "usd"}}, bal.Pending)
	require.Equal(t, int64(1500), authorized.Amount)

	none, err := b.store.Balance(ctx, "someone else")
	require.NoError(t, err)
	require.Equal(t, charge.Balance{Object: "balance", Available: []charge.Money{}, Pending: []charge.Money{}}, none)
}

// Three workers, each with a store of its own as a process has, write the ledger of 60
// charges at the same time, each in its own batches and its own order, every entry by all
// three: what redelivery and two workers on one message do. The balance is the sum of the
// ledger, exactly, and reconciliation would find no drift.
func testBalanceUnderRaces(t *testing.T, eng engine) {
	t.Parallel()
	b := eng.setup(t)
	ctx := t.Context()
	entries := recordtest.Ledger(b.merchant, 60, now())

	// The entries of one transaction go in one call, as the worker writes them.
	var txs [][]charge.LedgerEntry
	for i, e := range entries {
		if i == 0 || e.Transaction != entries[i-1].Transaction {
			txs = append(txs, nil)
		}
		txs[len(txs)-1] = append(txs[len(txs)-1], e)
	}
	stores := []store.Store{b.store, b.another(t), b.another(t)}
	errs := make(chan error, len(txs)*len(stores))
	var wg sync.WaitGroup
	for i, st := range stores {
		order := append(slices.Clone(txs[i*len(txs)/3:]), txs[:i*len(txs)/3]...)
		size := 3 + 4*i
		wg.Go(func() {
			for batch := range slices.Chunk(order, size) {
				errs <- st.InsertLedgerEntries(ctx, slices.Concat(batch...))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	bal, err := b.store.Balance(ctx, b.merchant)
	require.NoError(t, err)
	require.Equal(t, recordtest.Balance(entries), bal)
	var stored int
	require.NoError(t, b.store.EachLedgerEntry(ctx, func(e charge.LedgerEntry) error {
		if e.Merchant == b.merchant {
			stored++
		}
		return nil
	}))
	require.Equal(t, len(entries), stored, "each entry stored once")
}

// Settled refunds are inserted once, read back by id and by charge, scoped to their
// merchant.
func testRefunds(t *testing.T, eng engine) {
	b := eng.setup(t)
	ctx := t.Context()
	c := pendingCharge(b.merchant)
	code := charge.CodeAmountTooLarge
	done := charge.Refund{ID: charge.NewID(charge.PrefixRefund), Merchant: b.merchant, Charge: c.ID, Amount: 300,
		Currency: "usd", Status: charge.RefundSucceeded, CreatedAt: now(), UpdatedAt: now(), Version: 3}
	failed := done
	failed.ID, failed.Charge, failed.Status, failed.FailureCode = charge.NewID(charge.PrefixRefund), "ch_other", charge.RefundFailed, &code
	require.NoError(t, b.store.InsertRefunds(ctx, []charge.Refund{done, failed}))
	require.NoError(t, b.store.InsertRefunds(ctx, []charge.Refund{done}), "a repeat is not an error")

	got, err := b.store.GetRefund(ctx, b.merchant, done.ID)
	require.NoError(t, err)
	require.Equal(t, done, got)
	got, err = b.store.GetRefund(ctx, b.merchant, failed.ID)
	require.NoError(t, err)
	require.Equal(t, code, *got.FailureCode)
	_, err = b.store.GetRefund(ctx, "someone else", done.ID)
	require.ErrorIs(t, err, charge.ErrNotFound)

	list, more, err := b.store.ListRefunds(ctx, b.merchant, charge.RefundListParams{Charge: c.ID})
	require.NoError(t, err)
	require.False(t, more)
	require.Equal(t, []string{done.ID}, ids(list, func(r charge.Refund) string { return r.ID }))
	list, more, err = b.store.ListRefunds(ctx, b.merchant, charge.RefundListParams{Limit: 1})
	require.NoError(t, err)
	require.True(t, more)
	require.Equal(t, []string{failed.ID}, ids(list, func(r charge.Refund) string { return r.ID }))
}
