package sqlitestore

import (
	"context"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/webhook"

	"github.com/billing/billing/internal/store/recordtest"
)

// fullReads are the statements that read a whole table on purpose (reconciliation's
// walks): the only ones allowed to scan one.
var fullReads = []string{
	"SELECT " + chargeColumns + " FROM charges",
	"SELECT " + transitionColumns + " FROM transitions",
	"SELECT " + refundColumns + " FROM refunds",
	"SELECT " + ledgerColumns + " FROM ledger_entries",
}

// Every statement the store runs, found by running every method with traceSQL set, uses
// an index: its plan searches by an index or the primary key, and scans only json_each
// (the list of ids an IN or a join is given), never a table, except fullReads. Lists
// read their index in order: no sort.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s := openTraced(t)
	exerciseAll(t, s)

	queries := s.traced()
	require.GreaterOrEqual(t, len(queries), 30, "every method ran")
	for _, q := range queries {
		plan := explain(t, s, q)
		t.Logf("%s\n\t%s", q, strings.Join(plan, "\n\t"))
		if slices.Contains(fullReads, q) {
			continue
		}
		usesIndex := false
		for _, step := range plan {
			switch {
			case bareScan.MatchString(step):
				t.Errorf("%s\nscans a table: %s", q, step)
			case strings.Contains(step, "USE TEMP B-TREE") && strings.Contains(q, "ORDER BY id DESC"):
				t.Errorf("%s\nsorts instead of reading an index in order: %s", q, step)
			case strings.Contains(step, "USING INDEX"), strings.Contains(step, "USING COVERING INDEX"),
				strings.Contains(step, "USING PRIMARY KEY"), strings.Contains(step, "USING INTEGER PRIMARY KEY"),
				strings.Contains(step, "USING ROWID SEARCH"):
				usesIndex = true
			}
		}
		if strings.Contains(q, " WHERE ") {
			require.True(t, usesIndex, "%s\nuses no index: %v", q, plan)
		}
	}
}

// bareScan matches a plan step that reads a whole table: SCAN of anything but a virtual
// table (json_each), not through an index.
var bareScan = regexp.MustCompile(`^SCAN (\S+)(?: AS \S+)?$`)

// openTraced opens a store on a new file that records the statements it runs.
func openTraced(t *testing.T) *tracedStore {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "billing.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close(context.Background())) })
	ts := &tracedStore{Store: s, seen: map[string]bool{}}
	s.traceSQL = func(q string) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.seen[q] = true
	}
	return ts
}

type tracedStore struct {
	*Store
	mu   sync.Mutex
	seen map[string]bool
}

// traced returns the distinct statements run so far, sorted.
func (s *tracedStore) traced() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var qs []string
	for q := range s.seen {
		qs = append(qs, q)
	}
	slices.Sort(qs)
	return qs
}

// explain returns the steps of the query plan of q, with unbound parameters (NULL): the
// plan does not depend on the values.
func explain(t *testing.T, s *tracedStore, q string) []string {
	t.Helper()
	rows, err := s.read.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, make([]any, strings.Count(q, "?"))...)
	require.NoError(t, err, q)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &notUsed, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	return plan
}

// exerciseAll calls every method of the store, with arguments that take every branch of
// the statements it builds.
func exerciseAll(t *testing.T, s *tracedStore) {
	t.Helper()
	ctx := t.Context()
	merchant := "acct_plan"
	at := time.Now().UTC().Truncate(time.Millisecond)
	r := recordtest.New(merchant, at)
	c, tr, done, ev, refund, endpoint, delivery := r.Charge, r.Transition, r.Settled, r.Event, r.Refund, r.Endpoint, r.Delivery
	noop := func(any) error { return nil }

	must := func(err error) {
		t.Helper()
		require.NoError(t, err)
	}
	must2 := func(_ any, err error) {
		t.Helper()
		require.NoError(t, err)
	}
	must3 := func(_ any, _ bool, err error) {
		t.Helper()
		require.NoError(t, err)
	}

	must2(s.InsertCharges(ctx, []charge.Charge{c}))
	must2(s.ClaimTransitions(ctx, []charge.Transition{tr}))
	must(s.SaveCharges(ctx, []charge.Charge{done}))
	must2(s.GetCharge(ctx, merchant, c.ID))
	must2(s.ChargesByID(ctx, []string{c.ID}))
	must2(s.TransitionsFrom(ctx, map[string]int{c.ID: 1}))
	for _, p := range []charge.ListParams{{}, {Status: charge.StatusSucceeded}, {StartingAfter: c.ID}, {Status: charge.StatusSucceeded, StartingAfter: c.ID},
		{Customer: "cus_1"}, {Customer: "cus_1", StartingAfter: c.ID}} {
		must3(s.ListCharges(ctx, merchant, p))
	}

	must(s.InsertRefunds(ctx, []charge.Refund{refund}))
	must2(s.GetRefund(ctx, merchant, refund.ID))
	for _, p := range []charge.RefundListParams{{}, {Charge: c.ID}, {StartingAfter: refund.ID}, {Charge: c.ID, StartingAfter: refund.ID}} {
		must3(s.ListRefunds(ctx, merchant, p))
	}

	must(s.InsertEvents(ctx, []charge.Event{ev}))
	must2(s.GetEvent(ctx, merchant, ev.ID))
	for _, typ := range []string{"", ev.Type} {
		for _, after := range []string{"", ev.ID} {
			must3(s.ListEvents(ctx, merchant, typ, 0, after))
		}
	}

	must(s.InsertLedgerEntries(ctx, charge.Ledger(c, []charge.Transition{tr})))
	must2(s.Balance(ctx, merchant))
	must(s.InsertDeadLetters(ctx, []charge.DeadLetter{{ID: c.ID + ":create", At: at}}))
	must2(s.DeadLetters(ctx))

	must(s.InsertEndpoint(ctx, endpoint))
	must2(s.Endpoint(ctx, endpoint.ID))
	must3(s.ListEndpoints(ctx, merchant, 0, ""))
	must3(s.ListEndpoints(ctx, merchant, 0, endpoint.ID))
	must2(s.EnabledEndpoints(ctx, []string{merchant, "acct_other"}))
	must(s.SaveEndpoint(ctx, endpoint))
	disabled := endpoint
	disabled.Status = webhook.StatusDisabled
	must(s.SaveEndpoint(ctx, disabled))
	must(s.SetEndpointSecrets(ctx, endpoint.ID, nil, at))
	must(s.SetEndpointHealth(ctx, endpoint.ID, &at, ""))
	must(s.SetEndpointHealth(ctx, endpoint.ID, &at, "failing"))
	must2(s.DisabledEndpoints(ctx, 0))
	must2(s.Run(ctx, delivery.Key))
	must(s.SaveRun(ctx, delivery.Key, 1))
	must(s.InsertDelivery(ctx, delivery))
	must3(s.ListDeliveries(ctx, endpoint.ID, 0, ""))
	must3(s.ListDeliveries(ctx, endpoint.ID, 0, delivery.ID))
	must2(s.DeleteBefore(ctx, at.Add(time.Hour)))
	must(s.DeleteEndpoint(ctx, endpoint.ID))

	must(s.EachCharge(ctx, func(v charge.Charge) error { return noop(v) }))
	must(s.EachTransition(ctx, func(v charge.Transition) error { return noop(v) }))
	must(s.EachRefund(ctx, func(v charge.Refund) error { return noop(v) }))
	must(s.EachLedgerEntry(ctx, func(v charge.LedgerEntry) error { return noop(v) }))
	must(s.Ping(ctx))
}
