// Package reconcile checks that what the store records agrees with itself and with the
// payment processor: each charge's document against the fold of its transition log, its
// refunds against their documents, its ledger entries against those its history calls for
// (and each transaction's against zero), and, where the log records an answer of the
// processor, that answer against the processor's own record, asked again under the same
// idempotency key (which makes the processor answer without acting again).
package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/processor"
)

// Store walks the collections that are checked.
type Store interface {
	EachCharge(ctx context.Context, f func(charge.Charge) error) error
	EachTransition(ctx context.Context, f func(charge.Transition) error) error
	EachRefund(ctx context.Context, f func(charge.Refund) error) error
	EachLedgerEntry(ctx context.Context, f func(charge.LedgerEntry) error) error
	// Balance is a merchant's balance as the store keeps it (running totals, or sums).
	Balance(ctx context.Context, merchant string) (charge.Balance, error)
}

// Processor is asked again for the answers the log records.
type Processor interface {
	Authorize(ctx context.Context, req processor.AuthorizeRequest) (processor.Result, error)
	Capture(ctx context.Context, req processor.CaptureRequest) (processor.Result, error)
	Void(ctx context.Context, req processor.VoidRequest) (processor.Result, error)
	Refund(ctx context.Context, req processor.RefundRequest) (processor.Result, error)
}

// Finding is one disagreement, about one charge (or a record that names none).
type Finding struct {
	ChargeID string
	Problem  string
}

func (f Finding) String() string { return f.ChargeID + ": " + f.Problem }

// Report is what a run found.
type Report struct {
	Charges, Transitions, Refunds, LedgerEntries int
	// ProcessorChecks counts the processor calls asked again.
	ProcessorChecks int
	Findings        []Finding
}

// Summary is the one line a run prints when all agree, and the last line otherwise.
func (r Report) Summary() string {
	return fmt.Sprintf("reconciled %d charges, %d transitions, %d refunds, %d ledger entries, %d processor records: %d disagreements",
		r.Charges, r.Transitions, r.Refunds, r.LedgerEntries, r.ProcessorChecks, len(r.Findings))
}

// Run reads every charge, transition, refund and ledger entry and reports disagreements.
// proc, if not nil, is asked again for each answer the logs record, concurrency at once.
// Run reads whole collections into memory: it is an operator's tool, for a quiet moment
// (commands in flight show up as charges whose views are behind their logs).
func Run(ctx context.Context, st Store, proc Processor, concurrency int) (Report, error) {
	var (
		rep      Report
		charges  = map[string]charge.Charge{}
		logs     = map[string][]charge.Transition{}
		refunds  = map[string]charge.Refund{}
		ledger   = map[string][]charge.LedgerEntry{}
		findings []Finding
	)
	if err := st.EachCharge(ctx, func(c charge.Charge) error { charges[c.ID] = c; return nil }); err != nil {
		return rep, err
	}
	if err := st.EachTransition(ctx, func(t charge.Transition) error {
		logs[t.ChargeID] = append(logs[t.ChargeID], t)
		rep.Transitions++
		return nil
	}); err != nil {
		return rep, err
	}
	if err := st.EachRefund(ctx, func(r charge.Refund) error { refunds[r.ID] = r; return nil }); err != nil {
		return rep, err
	}
	if err := st.EachLedgerEntry(ctx, func(e charge.LedgerEntry) error {
		ledger[e.ChargeID] = append(ledger[e.ChargeID], e)
		rep.LedgerEntries++
		return nil
	}); err != nil {
		return rep, err
	}
	rep.Charges, rep.Refunds = len(charges), len(refunds)

	folded := map[string]charge.Charge{}
	for _, id := range slices.Sorted(maps.Keys(charges)) {
		c := charges[id]
		ts := logs[id]
		slices.SortFunc(ts, func(a, b charge.Transition) int { return cmp.Compare(a.Sequence, b.Sequence) })
		f := charge.Fold(c, ts)
		folded[id] = f
		for _, p := range checkCharge(c, f, ts, refunds, ledger[id]) {
			findings = append(findings, Finding{ChargeID: id, Problem: p})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(logs)) {
		if _, ok := charges[id]; !ok {
			findings = append(findings, Finding{ChargeID: id, Problem: fmt.Sprintf("%d transitions but no charge document", len(logs[id]))})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(ledger)) {
		if _, ok := charges[id]; !ok {
			findings = append(findings, Finding{ChargeID: id, Problem: fmt.Sprintf("%d ledger entries but no charge document", len(ledger[id]))})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(refunds)) {
		r := refunds[id]
		f, ok := folded[r.Charge]
		if _, inLog := f.RefundByID(id); !ok || !inLog {
			findings = append(findings, Finding{ChargeID: r.Charge, Problem: fmt.Sprintf("refund %s is stored but not in the charge's history", id)})
		}
	}
	drift, err := checkBalances(ctx, st, ledger)
	if err != nil {
		return rep, err
	}
	findings = append(findings, drift...)
	if proc != nil {
		more, n, err := askProcessor(ctx, proc, charges, logs, concurrency)
		if err != nil {
			return rep, err
		}
		findings = append(findings, more...)
		rep.ProcessorChecks = n
	}
	slices.SortStableFunc(findings, func(a, b Finding) int { return cmp.Compare(a.ChargeID, b.ChargeID) })
	rep.Findings = findings
	return rep, nil
}

// checkBalances compares each merchant's balance, as the store keeps it, with the sums of
// the merchant's ledger entries: the totals are written with the entries, and must never
// drift from them. A drift is reported against the merchant ("merchant <id>").
func checkBalances(ctx context.Context, st Store, ledger map[string][]charge.LedgerEntry) ([]Finding, error) {
	type key struct{ currency, side string }
	sums := map[string]map[key]int64{}
	for _, entries := range ledger {
		for _, e := range entries {
			side := ""
			switch e.Account {
			case charge.AccountAvailable:
				side = "available"
			case charge.AccountAuthorized:
				side = "pending"
			default:
				continue
			}
			if sums[e.Merchant] == nil {
				sums[e.Merchant] = map[key]int64{}
			}
			sums[e.Merchant][key{e.Currency, side}] += e.Amount
		}
	}
	var out []Finding
	for _, m := range slices.Sorted(maps.Keys(sums)) {
		b, err := st.Balance(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("reading the balance of %s: %w", m, err)
		}
		kept := map[key]int64{}
		for _, v := range b.Available {
			kept[key{v.Currency, "available"}] += v.Amount
		}
		for _, v := range b.Pending {
			kept[key{v.Currency, "pending"}] += v.Amount
		}
		keys := slices.Collect(maps.Keys(sums[m]))
		for k := range kept {
			if _, ok := sums[m][k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.currency, b.currency), cmp.Compare(a.side, b.side)) })
		for _, k := range keys {
			if kept[k] != sums[m][k] {
				out = append(out, Finding{ChargeID: "merchant " + m, Problem: fmt.Sprintf(
					"%s %s balance is %d, its ledger entries sum to %d", k.currency, k.side, kept[k], sums[m][k])})
			}
		}
	}
	return out, nil
}

// checkCharge compares stored charge c with f, the fold of its log ts, and with its
// refunds and ledger entries.
func checkCharge(c, f charge.Charge, ts []charge.Transition, refunds map[string]charge.Refund, entries []charge.LedgerEntry) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if int(f.Version) != len(ts) {
		add("the log has a gap: %d transitions, consecutive up to %d", len(ts), f.Version)
	}
	if c.Version != f.Version || c.Status != f.Status || c.AmountCaptured != f.AmountCaptured ||
		c.AmountRefunded != f.AmountRefunded || len(c.Events) != len(f.Events) || len(c.Refunds) != len(f.Refunds) ||
		len(c.Ended) != len(f.Ended) || (c.Operation == nil) != (f.Operation == nil) {
		add("stored as %s v%d (captured %d, refunded %d), its log makes it %s v%d (captured %d, refunded %d)",
			c.Status, c.Version, c.AmountCaptured, c.AmountRefunded, f.Status, f.Version, f.AmountCaptured, f.AmountRefunded)
	}
	if f.AmountCaptured > f.Amount || f.AmountRefunded > f.AmountCaptured || f.Refundable() < 0 {
		add("amounts do not add up: amount %d, captured %d, refunded %d, refundable %d",
			f.Amount, f.AmountCaptured, f.AmountRefunded, f.Refundable())
	}
	var refunded int64
	for _, r := range f.Refunds {
		if r.Status == charge.RefundSucceeded {
			refunded += r.Amount
		}
		s, ok := refunds[r.ID]
		switch {
		case !ok && r.Status != charge.RefundPending:
			add("refund %s is %s in the history but not stored", r.ID, r.Status)
		case ok && (s.Status != r.Status || s.Amount != r.Amount || s.Charge != c.ID || s.Merchant != c.Merchant):
			add("refund %s is stored as %s %d, its history makes it %s %d", r.ID, s.Status, s.Amount, r.Status, r.Amount)
		}
	}
	if refunded != f.AmountRefunded {
		add("succeeded refunds sum to %d, amount_refunded is %d", refunded, f.AmountRefunded)
	}
	out = append(out, checkLedger(c, f, ts, entries)...)
	return out
}

// checkLedger compares the entries stored for charge c with those its history calls for,
// and checks that each transaction sums to zero and the accounts to what the charge says.
func checkLedger(c, f charge.Charge, ts []charge.Transition, entries []charge.LedgerEntry) []string {
	var out []string
	want := map[string]charge.LedgerEntry{}
	for _, e := range charge.Ledger(c, ts) {
		want[e.ID] = e
	}
	got := map[string]charge.LedgerEntry{}
	sums := map[string]int64{}
	accounts := map[charge.Account]int64{}
	for _, e := range entries {
		got[e.ID] = e
		sums[e.Transaction] += e.Amount
		accounts[e.Account] += e.Amount
		w, ok := want[e.ID]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("ledger entry %s is not called for by the history", e.ID))
		case w.Amount != e.Amount || w.Account != e.Account || w.Currency != e.Currency || w.Merchant != e.Merchant:
			out = append(out, fmt.Sprintf("ledger entry %s is %s %d %s, the history calls for %s %d %s",
				e.ID, e.Account, e.Amount, e.Currency, w.Account, w.Amount, w.Currency))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if _, ok := got[id]; !ok {
			out = append(out, fmt.Sprintf("ledger entry %s (%s %d) is missing", id, want[id].Account, want[id].Amount))
		}
	}
	for _, tx := range slices.Sorted(maps.Keys(sums)) {
		if sums[tx] != 0 {
			out = append(out, fmt.Sprintf("transaction %s sums to %d, not zero", tx, sums[tx]))
		}
	}
	var authorized int64
	if f.Status == charge.StatusRequiresCapture {
		authorized = f.Amount
	}
	if a := accounts[charge.AccountAvailable]; a != f.AmountCaptured-f.AmountRefunded {
		out = append(out, fmt.Sprintf("ledger has %d available, the charge %d captured less %d refunded", a, f.AmountCaptured, f.AmountRefunded))
	}
	if a := accounts[charge.AccountAuthorized]; a != authorized {
		out = append(out, fmt.Sprintf("ledger holds %d authorized, the charge %d", a, authorized))
	}
	return out
}

// check is one processor call to ask again and the answer the log recorded for it.
type check struct {
	chargeID string
	what     string
	ask      func(context.Context, Processor) (processor.Result, error)
	approved bool
	ref      string
}

// askProcessor asks the processor again, with the same idempotency keys, for every answer
// the logs record, and reports those it answers differently.
func askProcessor(ctx context.Context, proc Processor, charges map[string]charge.Charge, logs map[string][]charge.Transition, concurrency int) ([]Finding, int, error) {
	var checks []check
	for _, id := range slices.Sorted(maps.Keys(charges)) {
		checks = append(checks, checksOf(charges[id], logs[id])...)
	}
	var (
		mu       sync.Mutex
		findings []Finding
	)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for _, ch := range checks {
		g.Go(func() error {
			res, err := ch.ask(ctx, proc)
			if err != nil {
				return fmt.Errorf("asking the processor about %s of %s: %w", ch.what, ch.chargeID, err)
			}
			if res.Approved != ch.approved || (ch.ref != "" && res.Reference != ch.ref) {
				mu.Lock()
				findings = append(findings, Finding{ChargeID: ch.chargeID, Problem: fmt.Sprintf(
					"processor says %s is %s (%q), the log %s (%q)", ch.what, verdict(res.Approved), res.Reference, verdict(ch.approved), ch.ref)})
				mu.Unlock()
			}
			return nil
		})
	}
	return findings, len(checks), g.Wait()
}

func verdict(approved bool) string {
	if approved {
		return "approved"
	}
	return "declined"
}

// checksOf lists the processor answers c's log records. Calls that got no answer (the
// charge or refund failed with processing_error after its attempts, or was refused before
// any call) are not asked: asking would make the call.
func checksOf(c charge.Charge, ts []charge.Transition) []check {
	var out []check
	v := charge.Fold(c, nil)
	for _, t := range ts {
		if t.Sequence != int(v.Version)+1 {
			break
		}
		answered := t.FailureCode != charge.FailureProcessingError
		switch t.Kind {
		case charge.KindAuthorization:
			if answered {
				req := processor.AuthorizeRequest{ChargeID: c.ID, Amount: c.Amount, Currency: c.Currency, PaymentMethod: c.PaymentMethod, Capture: c.Capture}
				out = append(out, check{c.ID, "the authorization", func(ctx context.Context, p Processor) (processor.Result, error) {
					return p.Authorize(ctx, req)
				}, t.FailureCode == "", t.AuthorizationID})
			}
		case charge.KindCaptured, charge.KindCaptureFailed:
			if answered && v.Operation != nil {
				req := processor.CaptureRequest{ChargeID: c.ID, AuthorizationID: v.AuthorizationID, Amount: v.Operation.Amount}
				out = append(out, check{c.ID, "the capture", func(ctx context.Context, p Processor) (processor.Result, error) {
					return p.Capture(ctx, req)
				}, t.Kind == charge.KindCaptured, t.Reference})
			}
		case charge.KindCanceled, charge.KindCancelFailed:
			if answered {
				req := processor.VoidRequest{ChargeID: c.ID, AuthorizationID: v.AuthorizationID}
				out = append(out, check{c.ID, "the void", func(ctx context.Context, p Processor) (processor.Result, error) {
					return p.Void(ctx, req)
				}, t.Kind == charge.KindCanceled, t.Reference})
			}
		case charge.KindRefunded, charge.KindRefundFailed:
			r, reserved := v.RefundByID(t.RefundID)
			if reserved && answered {
				req := processor.RefundRequest{ChargeID: c.ID, AuthorizationID: v.AuthorizationID, RefundID: r.ID, Amount: r.Amount}
				out = append(out, check{c.ID, "refund " + r.ID, func(ctx context.Context, p Processor) (processor.Result, error) {
					return p.Refund(ctx, req)
				}, t.Kind == charge.KindRefunded, t.Reference})
			}
		}
		v = v.Apply(t)
	}
	return out
}
