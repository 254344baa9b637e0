package ingest

import (
	"context"

	"github.com/billing/billing/internal/charge"
)

// BalanceStore computes a merchant's balance from the ledger.
type BalanceStore interface {
	Balance(ctx context.Context, merchant string) (charge.Balance, error)
}

// Balances reads merchants' balances.
type Balances struct {
	Store BalanceStore
}

// Get returns a merchant's balance: per currency, what is available and what is pending.
func (s *Balances) Get(ctx context.Context, merchant string) (charge.Balance, error) {
	return s.Store.Balance(ctx, merchant)
}
