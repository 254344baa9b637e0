package e2e

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The checker, in the manner of Jepsen's queue checker: every charge that got a 202 is
// classified by what merchants, the processor and the listing saw of it once the system
// has settled, and the counts are printed before anything fails.

// verdict counts the outcomes of the accepted charges.
type verdict struct {
	// ok: settled in the one terminal state its payment method calls for, authorized
	// once at the processor, listed once.
	ok int
	// lost: a 202 whose charge never left pending, was not found, or is not listed.
	lost int
	// duplicated: more than one charge for one idempotency key, more than one
	// authorization for one charge, a charge listed twice.
	duplicated int
	// unexpected: a charge, an authorization or an outcome nobody asked for.
	unexpected int
	// examples are the first few of each kind but ok.
	examples map[string][]string
}

// maxExamples bounds the examples kept of each kind.
const maxExamples = 5

func (v *verdict) add(kind string, counter *int, format string, args ...any) {
	*counter++
	if v.examples == nil {
		v.examples = map[string][]string{}
	}
	if len(v.examples[kind]) < maxExamples {
		v.examples[kind] = append(v.examples[kind], fmt.Sprintf(format, args...))
	}
}

func (v verdict) String() string {
	return fmt.Sprintf("ok %d, lost %d, duplicated %d, unexpected %d", v.ok, v.lost, v.duplicated, v.unexpected)
}

// require logs the counts, then fails the test, with examples, if any charge was lost,
// duplicated or unexpected.
func (v verdict) require(t *testing.T) {
	t.Helper()
	t.Logf("checker: %s", v)
	if v.lost+v.duplicated+v.unexpected == 0 {
		return
	}
	var lines []string
	for _, kind := range slices.Sorted(maps.Keys(v.examples)) {
		for _, e := range v.examples[kind] {
			lines = append(lines, kind+": "+e)
		}
	}
	t.Fatalf("checker: %s; the first of each:\n%s", v, strings.Join(lines, "\n"))
}

// check classifies the accepted charges ids (by charge id), settled as charges.
func (s *system) check(t *testing.T, ids map[string]*order, charges map[string]chargeObject) verdict {
	t.Helper()
	var v verdict
	bad := map[string]bool{} // charge ids already counted as not ok

	// What merchants see of each: the one terminal state its payment method calls for.
	outcomes := map[string]int{}
	for id, o := range ids {
		c, found := charges[id]
		outcomes[c.Status]++
		switch {
		case !found || c.Status == "" || c.Status == "pending":
			v.add("lost", &v.lost, "%s (key %s): never settled (%q)", id, o.key, c.Status)
			bad[id] = true
		case c.ID != id || c.Amount != o.amount || c.Currency != "usd" || c.PaymentMethod != o.method ||
			c.AmountRefunded != 0 || c.Status != o.settledStatus() || !settledAsCalledFor(c, o):
			v.add("unexpected", &v.unexpected, "%s (key %s): settled as %+v", id, o.key, c)
			bad[id] = true
		}
	}
	t.Logf("outcomes: %v", outcomes)

	// What the processor saw: each charge authorized exactly once, as it was asked.
	ps := s.processor.stats()
	for _, p := range ps.problems {
		v.add("unexpected", &v.unexpected, "processor protocol: %s", p)
	}
	for id, o := range ids {
		as := ps.byCharge[id]
		switch {
		case len(as) == 0:
			if !bad[id] {
				v.add("unexpected", &v.unexpected, "%s: settled without an authorization", id)
				bad[id] = true
			}
		case len(as) > 1:
			v.add("duplicated", &v.duplicated, "%s: %d authorizations", id, len(as))
			bad[id] = true
		case as[0].req != (authRequest{ChargeID: id, Amount: o.amount, Currency: "usd", PaymentMethod: o.method, Capture: o.capture}):
			v.add("unexpected", &v.unexpected, "%s: authorized as %+v", id, as[0].req)
			bad[id] = true
		}
	}
	for id := range ps.byCharge {
		if _, ok := ids[id]; !ok {
			v.add("unexpected", &v.unexpected, "%s: authorized, never accepted", id)
		}
	}
	t.Logf("processor: %d calls, %d distinct authorizations, %d repeats of a decided key, %d injected 503s, %d answers lost on purpose",
		ps.calls, len(ps.byCharge), ps.repeats, ps.failed503, ps.lost)

	// What the listing holds: exactly the accepted charges, once each, newest first. An
	// amount names its order (newOrders): a charge not accepted under an order's amount is
	// a second charge for its key.
	byAmount := map[int64]*order{}
	for _, o := range ids {
		byAmount[o.amount] = o
	}
	listed, err := s.listAll(t.Context())
	if err != nil {
		t.Fatalf("listing the charges: %v", err)
	}
	seen := map[string]int{}
	for i, c := range listed {
		seen[c.ID]++
		_, accepted := ids[c.ID]
		switch {
		case seen[c.ID] > 1:
			v.add("duplicated", &v.duplicated, "%s: listed %d times", c.ID, seen[c.ID])
		case !accepted && byAmount[c.Amount] != nil:
			v.add("duplicated", &v.duplicated, "%s: a second charge for key %s (%s)", c.ID, byAmount[c.Amount].key, byAmount[c.Amount].id)
		case !accepted:
			v.add("unexpected", &v.unexpected, "%s: listed, never accepted", c.ID)
		case i > 0 && c.ID >= listed[i-1].ID:
			v.add("unexpected", &v.unexpected, "%s: listed after %s, not newest first", c.ID, listed[i-1].ID)
		case c.Status != charges[c.ID].Status && !bad[c.ID]:
			v.add("unexpected", &v.unexpected, "%s: listed %s, got %s", c.ID, c.Status, charges[c.ID].Status)
			bad[c.ID] = true
		}
	}
	for id := range ids {
		switch {
		case seen[id] == 0 && !bad[id]:
			v.add("lost", &v.lost, "%s: accepted, not listed", id)
		case !bad[id]:
			v.ok++
		}
	}
	return v
}

// settledAsCalledFor reports whether c, settled in o's status, carries what that status
// does: a declined card's failure code and nothing captured; an authorization held with
// nothing captured; a capture of the whole amount.
func settledAsCalledFor(c chargeObject, o *order) bool {
	switch c.Status {
	case "failed":
		return c.FailureCode != nil && *c.FailureCode == "card_declined" && c.AmountCaptured == 0
	case "requires_capture":
		return c.FailureCode == nil && c.AmountCaptured == 0
	default:
		return c.FailureCode == nil && c.AmountCaptured == o.amount
	}
}

// settleAndCheck waits for the orders of load l (all accepted, the last accepted after
// accepted) to settle, checks them (check), writes the scenario's row to the chaos
// results when E2E_CHAOS_RESULTS names a file, and fails on anything but ok. It returns
// the orders by charge id and the charges as settled.
func (s *system) settleAndCheck(t *testing.T, orders []*order, l *load, accepted time.Duration) (map[string]*order, map[string]chargeObject) {
	t.Helper()
	ids := acceptedIDs(t, orders)
	charges, settled := s.settleAll(t, orders, l.start, accepted)
	v := s.check(t, ids, charges)
	p99 := l.acceptedPercentile(99)
	t.Logf("accepted requests: p99 %s; all settled %s after the first", p99.Round(time.Millisecond), settled.Round(time.Millisecond))
	if path := os.Getenv("E2E_CHAOS_RESULTS"); path != "" {
		row := fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %.1f s | %.0f ms |\n", t.Name(), len(orders), v.ok, v.lost, v.duplicated,
			v.unexpected, settled.Seconds(), float64(p99)/float64(time.Millisecond))
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.WriteString(row)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			t.Errorf("writing the chaos results: %v", err)
		}
	}
	v.require(t)
	return ids, charges
}

// scaled is n times E2E_SCALE (1 unless set): make chaos runs the scenarios longer.
func scaled(n int) int {
	if f, err := strconv.Atoi(os.Getenv("E2E_SCALE")); err == nil && f > 1 {
		return n * f
	}
	return n
}
