package charge

import (
	"maps"
	"slices"
	"time"
)

// Account is one of the ledger's accounts. Each merchant has each account once per
// currency.
type Account string

// The accounts. Money moves from the customer's side into authorized (held on the card,
// the balance's pending) and available (captured, less refunded), and back.
const (
	AccountCustomer   Account = "customer"
	AccountAuthorized Account = "authorized"
	AccountAvailable  Account = "available"
)

// LedgerEntry is one leg of a money movement. The entries of one transaction (one
// transition of a charge) sum to zero; entries are inserted once, under ids derived from
// the transition, and never updated or deleted.
type LedgerEntry struct {
	ID          string // <transition id>/<leg>
	Transaction string
	Merchant    string
	ChargeID    string
	RefundID    string
	Kind        TransitionKind
	Account     Account
	Currency    string
	Amount      int64
	CreatedAt   time.Time
}

// leg is an account and the signed amount it moves by.
type leg struct {
	account Account
	amount  int64
}

// Entries returns the ledger entries of transition t of c, c being the charge just
// before t: none for a transition that moves no money.
func Entries(c Charge, t Transition) []LedgerEntry {
	var legs []leg
	switch {
	case t.Kind == KindAuthorization && t.To == StatusSucceeded:
		legs = []leg{{AccountCustomer, -t.AmountCaptured}, {AccountAvailable, t.AmountCaptured}}
	case t.Kind == KindAuthorization && t.To == StatusRequiresCapture:
		legs = []leg{{AccountCustomer, -c.Amount}, {AccountAuthorized, c.Amount}}
	case t.Kind == KindCaptured:
		// The authorization is used up: the captured part becomes available, the rest
		// goes back to the customer.
		legs = []leg{{AccountAuthorized, -c.Amount}, {AccountAvailable, t.Amount}}
		if rest := c.Amount - t.Amount; rest > 0 {
			legs = append(legs, leg{AccountCustomer, rest})
		}
	case t.Kind == KindCanceled:
		legs = []leg{{AccountAuthorized, -c.Amount}, {AccountCustomer, c.Amount}}
	case t.Kind == KindRefunded:
		legs = []leg{{AccountAvailable, -t.Amount}, {AccountCustomer, t.Amount}}
	}
	entries := make([]LedgerEntry, 0, len(legs))
	for i, l := range legs {
		entries = append(entries, LedgerEntry{
			ID:          t.ID + "/" + string(rune('a'+i)),
			Transaction: t.ID,
			Merchant:    c.Merchant,
			ChargeID:    c.ID,
			RefundID:    t.RefundID,
			Kind:        t.Kind,
			Account:     l.account,
			Currency:    c.Currency,
			Amount:      l.amount,
			CreatedAt:   t.At,
		})
	}
	return entries
}

// Ledger returns every ledger entry of the history ts of c (as accepted), in order.
func Ledger(c Charge, ts []Transition) []LedgerEntry {
	c = Fold(c, nil)
	var entries []LedgerEntry
	for _, t := range ts {
		if t.ChargeID != c.ID || t.Sequence != int(c.Version)+1 {
			break
		}
		entries = append(entries, Entries(c, t)...)
		c = c.Apply(t)
	}
	return entries
}

// Money is an amount in a currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Balance is the balance object: per currency, what is available (captured less
// refunded) and pending (authorized, not yet captured).
type Balance struct {
	Object    string  `json:"object"`
	Available []Money `json:"available"`
	Pending   []Money `json:"pending"`
}

// Public returns b ready to be shown: its object name, and lists that are empty rather
// than null for a merchant whose money has not moved yet.
func (b Balance) Public() Balance {
	b.Object = "balance"
	if b.Available == nil {
		b.Available = []Money{}
	}
	if b.Pending == nil {
		b.Pending = []Money{}
	}
	return b
}

// BalanceSums adds account amounts up into a Balance, by currency: index 0 what the
// available account holds, 1 what the authorized account holds (the balance's pending).
// Every engine's Balance and the tests' expectations build theirs with it.
type BalanceSums map[string][2]int64

// Add counts amount of account in currency. The currency appears in the balance even if
// account is neither available nor authorized: money has moved in it.
func (s BalanceSums) Add(currency string, account Account, amount int64) {
	v := s[currency]
	switch account {
	case AccountAvailable:
		v[0] += amount
	case AccountAuthorized:
		v[1] += amount
	}
	s[currency] = v
}

// Balance returns the sums as the balance object, currencies in alphabetical order; the
// lists are empty, not nil, when nothing was added.
func (s BalanceSums) Balance() Balance {
	b := Balance{Object: "balance", Available: []Money{}, Pending: []Money{}}
	for _, c := range slices.Sorted(maps.Keys(s)) {
		b.Available = append(b.Available, Money{Amount: s[c][0], Currency: c})
		b.Pending = append(b.Pending, Money{Amount: s[c][1], Currency: c})
	}
	return b
}
