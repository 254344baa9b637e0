package sqlitestore

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/billing/billing/internal/charge"
)

// ledgerColumns are the columns scanLedgerEntry reads, in its order.
const ledgerColumns = "id, transaction_id, merchant, charge_id, refund_id, kind, account, currency, amount, created_at"

func scanLedgerEntry(sc scanner) (charge.LedgerEntry, error) {
	var e charge.LedgerEntry
	var createdAt int64
	if err := sc.Scan(&e.ID, &e.Transaction, &e.Merchant, &e.ChargeID, &e.RefundID, &e.Kind, &e.Account, &e.Currency, &e.Amount, &createdAt); err != nil {
		return charge.LedgerEntry{}, err
	}
	e.CreatedAt = fromMillis(createdAt)
	return e, nil
}

// account is one row of the balances table: an account of a merchant in a currency.
type account struct {
	merchant, currency string
	account            charge.Account
}

// InsertLedgerEntries writes entries in one transaction, and adds each one inserted to
// its account's sum in the balances table in the same transaction. Entries are never
// updated or deleted: one already stored under its id is left as it is, is not an error
// and is not added again, so a redelivery, or two workers writing the same entries,
// never count an entry twice.
func (s *Store) InsertLedgerEntries(ctx context.Context, es []charge.LedgerEntry) error {
	if len(es) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx writeTx) error {
		insert, err := tx.prepare(ctx, "INSERT INTO ledger_entries ("+ledgerColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")
		if err != nil {
			return err
		}
		defer func() { _ = insert.Close() }()
		taken, err := insertEach(ctx, insert, len(es), func(i int) ([]any, error) {
			e := es[i]
			return []any{e.ID, e.Transaction, e.Merchant, e.ChargeID, e.RefundID, string(e.Kind), string(e.Account), e.Currency, e.Amount, millis(e.CreatedAt)}, nil
		})
		if err != nil {
			return err
		}

		sums := map[account]int64{}
		for i, e := range es {
			if len(taken) > 0 && taken[0] == i {
				taken = taken[1:]
				continue
			}
			sums[account{e.Merchant, e.Currency, e.Account}] += e.Amount
		}
		if len(sums) == 0 {
			return nil
		}
		add, err := tx.prepare(ctx, "INSERT INTO balances (merchant, currency, account, amount) VALUES (?, ?, ?, ?)"+
			" ON CONFLICT (merchant, currency, account) DO UPDATE SET amount = amount + excluded.amount")
		if err != nil {
			return err
		}
		defer func() { _ = add.Close() }()
		for _, a := range slices.SortedFunc(maps.Keys(sums), compareAccounts) {
			if _, err := add.ExecContext(ctx, a.merchant, a.currency, string(a.account), sums[a]); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap(fmt.Sprintf("inserting %d ledger entries", len(es)), err)
}

func compareAccounts(a, b account) int {
	return cmp.Or(cmp.Compare(a.merchant, b.merchant), cmp.Compare(a.currency, b.currency), cmp.Compare(a.account, b.account))
}

// Balance returns merchant's balance from the sums of its accounts (InsertLedgerEntries
// keeps them): available is what the available account holds, pending what the
// authorized account holds. Currencies appear once money has moved in them, in
// alphabetical order; the lists are empty, not nil, for a merchant without entries.
func (s *Store) Balance(ctx context.Context, merchant string) (charge.Balance, error) {
	rows, err := s.query(ctx, "SELECT currency, account, amount FROM balances WHERE merchant = ?", merchant)
	if err != nil {
		return charge.Balance{}, s.wrap("reading the balance", err)
	}
	type sum struct {
		currency string
		account  charge.Account
		amount   int64
	}
	sums, err := scanAll(rows, func(sc scanner) (sum, error) {
		var v sum
		err := sc.Scan(&v.currency, &v.account, &v.amount)
		return v, err
	})
	if err != nil {
		return charge.Balance{}, s.wrap("reading the balance", err)
	}
	b := charge.BalanceSums{}
	for _, v := range sums {
		b.Add(v.currency, v.account, v.amount)
	}
	return b.Balance(), nil
}

// EachLedgerEntry calls f with every ledger entry, for reconciliation.
func (s *Store) EachLedgerEntry(ctx context.Context, f func(charge.LedgerEntry) error) error {
	return s.wrap("walking the ledger", each(ctx, s, "SELECT "+ledgerColumns+" FROM ledger_entries", scanLedgerEntry, f))
}
