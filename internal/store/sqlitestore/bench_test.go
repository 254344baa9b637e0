package sqlitestore_test

import (
	"path/filepath"
	"testing"

	"github.com/billing/billing/internal/charge"
)

// BenchmarkSettle writes what a worker writes to settle a batch of 256 new charges: the
// transitions, the charges, their events and ledger entries, each a transaction.
// charges/s is the figure to compare with FACTS (30k/s for 4 rows a charge).
func BenchmarkSettle(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "billing.db"))
	ctx := b.Context()
	const batch = 256
	n := 0
	for b.Loop() {
		cs := make([]charge.Charge, batch)
		ts := make([]charge.Transition, batch)
		es := make([]charge.Event, batch)
		var ledger []charge.LedgerEntry
		for i := range cs {
			c := newCharge("acct_bench")
			ts[i] = charge.NewTransition(c, charge.StatusSucceeded, now(), c.Amount, "", "auth")
			cs[i] = charge.Fold(c, ts[i:i+1])
			es[i] = charge.NewEvent(cs[i], ts[i].Event)
			ledger = append(ledger, charge.Entries(c, ts[i])...)
		}
		if _, err := s.ClaimTransitions(ctx, ts); err != nil {
			b.Fatal(err)
		}
		if _, err := s.InsertCharges(ctx, cs); err != nil {
			b.Fatal(err)
		}
		if err := s.InsertEvents(ctx, es); err != nil {
			b.Fatal(err)
		}
		if err := s.InsertLedgerEntries(ctx, ledger); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "charges/s")
}
