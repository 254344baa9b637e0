package reconcile_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/processor"
	"github.com/billing/billing/internal/reconcile"
	"github.com/billing/billing/internal/store"
	"github.com/billing/billing/internal/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }

// history records a charge's life the way the worker does: transitions, the folded charge
// and refunds, the ledger.
type history struct {
	base charge.Charge
	ts   []charge.Transition
}

func (h *history) step(f func(charge.Charge) charge.Transition) {
	h.ts = append(h.ts, f(charge.Fold(h.base, h.ts)))
}

func (h *history) write(t *testing.T, st store.Store) {
	t.Helper()
	h.writeViewAt(t, st, len(h.ts))
}

// writeViewAt writes h with the charge's view folded from its first n transitions only:
// a view left behind its log, as a worker that died between the two writes leaves it.
func (h *history) writeViewAt(t *testing.T, st store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := st.ClaimTransitions(ctx, h.ts)
	require.NoError(t, err)
	c := charge.Fold(h.base, h.ts[:n])
	_, err = st.InsertCharges(ctx, []charge.Charge{c})
	require.NoError(t, err)
	require.NoError(t, st.InsertRefunds(ctx, c.Refunds))
	require.NoError(t, st.InsertLedgerEntries(ctx, charge.Ledger(h.base, h.ts)))
}

func newHistory() *history {
	at := time.Now().UTC().Truncate(time.Millisecond)
	c := charge.Charge{ID: charge.NewID(charge.PrefixCharge), Merchant: "m", Amount: 1000, Currency: "usd",
		PaymentMethod: "pm_card_visa", Status: charge.StatusPending, CreatedAt: at, UpdatedAt: at}
	h := &history{base: c}
	now := time.Now()
	h.step(func(c charge.Charge) charge.Transition {
		return charge.NewTransition(c, charge.StatusRequiresCapture, now, 0, "", "sim_auth_"+c.ID)
	})
	h.step(func(c charge.Charge) charge.Transition { return c.RequestCapture(now, 800, 1) })
	h.step(func(c charge.Charge) charge.Transition { return c.Settle(now, true, "sim_cap_"+c.ID, "") })
	r := charge.Refund{ID: charge.NewID(charge.PrefixRefund), Merchant: "m", Charge: c.ID, Amount: 300, Currency: "usd", CreatedAt: now}
	h.step(func(c charge.Charge) charge.Transition { return c.ReserveRefund(now, r, 1) })
	h.step(func(c charge.Charge) charge.Transition { return c.RefundSucceeded(now, r.ID, "sim_re_"+r.ID) })
	return h
}

// open opens a store of its own, and returns its configuration, to damage what the store
// wrote.
func open(t *testing.T) (store.Store, store.Config) {
	t.Helper()
	cfg := storetest.Config(t)
	return storetest.Open(t, cfg), cfg
}

// A consistent history reconciles with nothing to report, the processor agreeing; every
// kind of disagreement is reported against its charge.
func TestReconcile(t *testing.T) {
	t.Parallel()
	st, cfg := open(t)
	ctx := context.Background()
	good := newHistory()
	good.write(t, st)
	rep, err := reconcile.Run(ctx, st, processor.Simulated{}, 4)
	require.NoError(t, err)
	require.Empty(t, rep.Findings)
	require.Equal(t, 1, rep.Charges)
	require.Equal(t, 5, rep.Transitions)
	require.Equal(t, 1, rep.Refunds)
	require.Equal(t, 3, rep.ProcessorChecks, "authorization, capture, refund")
	require.Contains(t, rep.Summary(), "0 disagreements")

	// A view left behind its log.
	stale := newHistory()
	stale.writeViewAt(t, st, 3)

	// A ledger entry missing, and one the history does not call for.
	ledger := newHistory()
	entries := charge.Ledger(ledger.base, ledger.ts)
	ledger.write(t, st)
	storetest.DeleteRecord(t, cfg, "ledger_entries", entries[0].ID)
	extra := entries[1]
	extra.ID, extra.Transaction = ledger.ts[1].ID+"/a", ledger.ts[1].ID
	require.NoError(t, st.InsertLedgerEntries(ctx, []charge.LedgerEntry{extra}))

	// The processor knows the capture under another reference.
	proc := newHistory()
	proc.ts[2].Reference = "someone else's capture"
	proc.write(t, st)

	rep, err = reconcile.Run(ctx, st, processor.Simulated{}, 4)
	require.NoError(t, err)
	byCharge := map[string][]string{}
	for _, f := range rep.Findings {
		byCharge[f.ChargeID] = append(byCharge[f.ChargeID], f.Problem)
	}
	require.NotContains(t, byCharge, good.base.ID)
	require.Contains(t, strings.Join(byCharge[stale.base.ID], "\n"), "its log makes it succeeded v5")
	ledgerProblems := strings.Join(byCharge[ledger.base.ID], "\n")
	require.Contains(t, ledgerProblems, "is missing")
	require.Contains(t, ledgerProblems, "is not called for by the history")
	require.Contains(t, ledgerProblems, "not zero")
	require.Contains(t, strings.Join(byCharge[proc.base.ID], "\n"), "processor says the capture is approved (\"sim_cap_")
}

// A balance kept as running totals that drifts from its ledger (an entry lost past the
// store) is reported against its merchant, on every engine.
func TestBalanceDrift(t *testing.T) {
	t.Parallel()
	st, cfg := open(t)
	ctx := context.Background()
	h := newHistory()
	h.write(t, st)
	rep, err := reconcile.Run(ctx, st, nil, 1)
	require.NoError(t, err)
	require.Empty(t, rep.Findings)

	var lost charge.LedgerEntry
	for _, e := range charge.Ledger(h.base, h.ts) {
		if e.Account == charge.AccountAvailable {
			lost = e
			break
		}
	}
	require.NotEmpty(t, lost.ID)
	storetest.DeleteRecord(t, cfg, "ledger_entries", lost.ID)
	rep, err = reconcile.Run(ctx, st, nil, 1)
	require.NoError(t, err)
	var drift []string
	for _, f := range rep.Findings {
		if f.ChargeID == "merchant m" {
			drift = append(drift, f.Problem)
		}
	}
	require.Len(t, drift, 1, "%v", rep.Findings)
	require.Contains(t, drift[0], "usd available balance is")
}
