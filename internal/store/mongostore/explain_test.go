package mongostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/billing/billing/internal/charge"

	"github.com/billing/billing/internal/store/recordtest"
)

// envMongoURI is storetest.EnvMongoURI; this test is of package mongostore, which
// storetest imports (through package store), so it cannot import storetest.
const envMongoURI = "BILLING_TEST_MONGO_URI"

// fullWalks are the collections that reconciliation walks whole (each: a find with no
// filter and no sort): the only queries allowed to scan a collection.
var fullWalks = []string{collCharges, collTransitions, collRefunds, collLedger}

// merchantScoped are the methods whose every query names the merchant on MongoDB, so that
// on a collection sharded by merchant (store.go) it goes to one shard.
var merchantScoped = []string{
	"GetCharge", "ListCharges", "SaveCharges", "GetEvent", "ListEvents", "GetRefund", "ListRefunds", "Balance",
	"ListEndpoints",
}

// notQueries are the commands of the database that select no documents: nothing to explain.
var notQueries = []string{"insert", "getMore", "killCursors", "createIndexes", "buildInfo", "dropDatabase"}

// Every query the engine sends, found by calling every method of the store with a command
// monitor on its client, uses an index on MongoDB: `explain` of the same command shows a
// winning plan that reads an index and scans no collection (COLLSCAN), except fullWalks;
// a find with a sort reads its index in order (no blocking SORT); the reads the API scopes
// by merchant name the merchant. It needs a real MongoDB: FerretDB's explain is not
// MongoDB's, and it scans for any filter but a bare _id anyway.
func TestQueryPlans(t *testing.T) {
	uri := os.Getenv(envMongoURI)
	if uri == "" {
		t.Skip(envMongoURI + " is not set: TestQueryPlans needs a real MongoDB (replica set or sharded " +
			"cluster) to explain the engine's queries on; the embedded FerretDB's explain differs")
	}
	t.Parallel()
	ctx := t.Context()

	var b [6]byte
	_, _ = rand.Read(b[:])
	database := "TestQueryPlans_" + hex.EncodeToString(b[:])
	rec := &recorder{database: database}
	s, err := open(ctx, uri, database, nil, &event.CommandMonitor{Started: rec.started})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.DropDatabase(ctx))
		require.NoError(t, s.Close(ctx))
	})
	if s.ferret {
		t.Skipf("%s is a FerretDB: TestQueryPlans needs a real MongoDB", envMongoURI)
	}

	called := exerciseAll(t, s, rec)
	for _, m := range methods(s) {
		require.Contains(t, called, m, "exerciseAll calls every method of the store")
	}

	// The explains go through a client of their own, which the recorder does not watch.
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	require.NoError(t, err)
	defer func() { require.NoError(t, client.Disconnect(context.WithoutCancel(ctx))) }()
	db := client.Database(database)

	explained := 0
	seen := map[string]bool{}
	for _, c := range rec.all() {
		switch {
		case slices.Contains(notQueries, c.name):
			continue
		case isWalk(c):
			t.Logf("%s: %s %s: a walk of the whole collection, allowed to scan", c.method, c.name, c.cmd)
			continue
		}
		if slices.Contains(merchantScoped, c.method) {
			for _, f := range filters(c) {
				_, err := f.LookupErr("merchant")
				require.NoError(t, err, "%s: %s: the filter %s does not name the merchant", c.method, c.name, f)
			}
		}
		stmts := explainable(c)
		require.NotEmpty(t, stmts, "%s: command %s %s: not known to select no documents, and nothing to explain in it", c.method, c.name, c.cmd)
		for _, stmt := range stmts {
			ext, err := bson.MarshalExtJSON(stmt, false, false)
			require.NoError(t, err)
			if seen[string(ext)] {
				continue
			}
			seen[string(ext)] = true
			var plan bson.Raw
			err = db.RunCommand(ctx, bson.D{{Key: "explain", Value: stmt}, {Key: "verbosity", Value: "queryPlanner"}}).Decode(&plan)
			require.NoError(t, err, "%s: explaining %s", c.method, ext)
			stages := winningStages(plan)
			t.Logf("%s: %s\n\t%v", c.method, ext, stages)
			explained++
			if slices.Contains(stages, "COLLSCAN") {
				t.Errorf("%s: %s\nscans the collection (COLLSCAN): %s", c.method, ext, plan)
			}
			if !slices.ContainsFunc(stages, readsIndex) {
				t.Errorf("%s: %s\nreads no index (%v): %s", c.method, ext, stages, plan)
			}
			if c.name == "find" && !isEmpty(c.cmd.Lookup("sort")) && slices.Contains(stages, "SORT") {
				t.Errorf("%s: %s\nsorts instead of reading an index in order: %s", c.method, ext, plan)
			}
		}
	}
	require.GreaterOrEqual(t, explained, 25, "every kind of query was explained")
}

// byMerchantID names the merchant on MongoDB and not on FerretDB, which pushes down only a
// bare _id; findOwned checks the merchant in Go there.
func TestByMerchantID(t *testing.T) {
	t.Parallel()
	want := bson.D{{Key: "merchant", Value: "acct_1"}, {Key: "_id", Value: "ch_1"}}
	require.Equal(t, want, (&Store{}).byMerchantID("acct_1", "ch_1"), "MongoDB")
	require.Equal(t, byID("ch_1"), (&Store{ferret: true}).byMerchantID("acct_1", "ch_1"), "FerretDB")
}

// command is a command the store sent, and the method that sent it.
type command struct {
	method string
	name   string
	cmd    bson.Raw
}

// recorder collects the commands that the store's client sends to database.
type recorder struct {
	database string
	mu       sync.Mutex
	method   string
	cmds     []command
}

func (r *recorder) started(_ context.Context, e *event.CommandStartedEvent) {
	if e.DatabaseName != r.database {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = append(r.cmds, command{method: r.method, name: e.CommandName, cmd: slices.Clone(e.Command)})
}

// during attributes the commands sent from now on to method.
func (r *recorder) during(method string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.method = method
}

func (r *recorder) all() []command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cmds)
}

// methods returns the exported methods of the store that reach its collections.
func methods(s *Store) []string {
	var ms []string
	typ := reflect.TypeOf(s)
	for i := range typ.NumMethod() {
		switch m := typ.Method(i).Name; m {
		case "AtomicConditions", "Close", "DropDatabase":
		default:
			ms = append(ms, m)
		}
	}
	return ms
}

// exerciseAll calls every method of the store, with arguments that take every branch of
// the queries it builds, and returns the names of those it called.
func exerciseAll(t *testing.T, s *Store, rec *recorder) map[string]bool {
	t.Helper()
	ctx := t.Context()
	called := map[string]bool{}
	call := func(method string, f func() error) {
		t.Helper()
		rec.during(method)
		require.NoError(t, f(), method)
		rec.during("")
		called[method] = true
	}

	merchant := "acct_plan"
	at := time.Now().UTC().Truncate(time.Millisecond)
	r := recordtest.New(merchant, at)
	c, tr, done, ev, refund, endpoint, delivery := r.Charge, r.Transition, r.Settled, r.Event, r.Refund, r.Endpoint, r.Delivery

	call("InsertCharges", func() error { return err2(s.InsertCharges(ctx, []charge.Charge{c})) })
	call("ClaimTransitions", func() error { return err2(s.ClaimTransitions(ctx, []charge.Transition{tr})) })
	call("SaveCharges", func() error { return s.SaveCharges(ctx, []charge.Charge{done}) })
	call("GetCharge", func() error { return err2(s.GetCharge(ctx, merchant, c.ID)) })
	call("ChargesByID", func() error { return err2(s.ChargesByID(ctx, []string{c.ID})) })
	call("TransitionsFrom", func() error { return err2(s.TransitionsFrom(ctx, map[string]int{c.ID: 1})) })
	for _, p := range []charge.ListParams{{}, {Status: charge.StatusSucceeded}, {StartingAfter: c.ID}, {Status: charge.StatusSucceeded, StartingAfter: c.ID}} {
		call("ListCharges", func() error { return err3(s.ListCharges(ctx, merchant, p)) })
	}

	call("InsertRefunds", func() error { return s.InsertRefunds(ctx, []charge.Refund{refund}) })
	call("GetRefund", func() error { return err2(s.GetRefund(ctx, merchant, refund.ID)) })
	for _, p := range []charge.RefundListParams{{}, {Charge: c.ID}, {StartingAfter: refund.ID}, {Charge: c.ID, StartingAfter: refund.ID}} {
		call("ListRefunds", func() error { return err3(s.ListRefunds(ctx, merchant, p)) })
	}

	call("InsertEvents", func() error { return s.InsertEvents(ctx, []charge.Event{ev}) })
	call("GetEvent", func() error { return err2(s.GetEvent(ctx, merchant, ev.ID)) })
	for _, typ := range []string{"", ev.Type} {
		for _, after := range []string{"", ev.ID} {
			call("ListEvents", func() error { return err3(s.ListEvents(ctx, merchant, typ, 0, after)) })
		}
	}

	call("InsertLedgerEntries", func() error { return s.InsertLedgerEntries(ctx, charge.Ledger(c, []charge.Transition{tr})) })
	call("Balance", func() error { return err2(s.Balance(ctx, merchant)) })
	call("InsertDeadLetters", func() error {
		return s.InsertDeadLetters(ctx, []charge.DeadLetter{{ID: c.ID + ":create", Subject: "charges.create", At: at}})
	})
	call("DeadLetters", func() error { return err2(s.DeadLetters(ctx)) })

	call("InsertEndpoint", func() error { return s.InsertEndpoint(ctx, endpoint) })
	call("Endpoint", func() error { return err2(s.Endpoint(ctx, endpoint.ID)) })
	call("ListEndpoints", func() error { return err3(s.ListEndpoints(ctx, merchant, 0, "")) })
	call("ListEndpoints", func() error { return err3(s.ListEndpoints(ctx, merchant, 0, endpoint.ID)) })
	call("EnabledEndpoints", func() error { return err2(s.EnabledEndpoints(ctx, []string{merchant, "acct_other"})) })
	call("SaveEndpoint", func() error { return s.SaveEndpoint(ctx, endpoint) })
	call("SetEndpointSecrets", func() error { return s.SetEndpointSecrets(ctx, endpoint.ID, nil, at) })
	call("SetEndpointHealth", func() error { return s.SetEndpointHealth(ctx, endpoint.ID, &at, "") })
	call("SetEndpointHealth", func() error { return s.SetEndpointHealth(ctx, endpoint.ID, &at, "failing") })
	call("DisabledEndpoints", func() error { return err2(s.DisabledEndpoints(ctx, 0)) })
	call("Run", func() error { return err2(s.Run(ctx, delivery.Key)) })
	call("SaveRun", func() error { return s.SaveRun(ctx, delivery.Key, 1) })
	call("InsertDelivery", func() error { return s.InsertDelivery(ctx, delivery) })
	call("ListDeliveries", func() error { return err3(s.ListDeliveries(ctx, endpoint.ID, 0, "")) })
	call("ListDeliveries", func() error { return err3(s.ListDeliveries(ctx, endpoint.ID, 0, delivery.ID)) })
	call("DeleteBefore", func() error { return err2(s.DeleteBefore(ctx, at.Add(-time.Hour))) })
	call("DeleteEndpoint", func() error { return s.DeleteEndpoint(ctx, endpoint.ID) })

	call("EachCharge", func() error { return s.EachCharge(ctx, func(charge.Charge) error { return nil }) })
	call("EachTransition", func() error { return s.EachTransition(ctx, func(charge.Transition) error { return nil }) })
	call("EachRefund", func() error { return s.EachRefund(ctx, func(charge.Refund) error { return nil }) })
	call("EachLedgerEntry", func() error { return s.EachLedgerEntry(ctx, func(charge.LedgerEntry) error { return nil }) })
	call("Ping", func() error { return s.Ping(ctx) })
	return called
}

func err2[T any](_ T, err error) error         { return err }
func err3[T any](_ T, _ bool, err error) error { return err }

// isWalk reports whether c is one of reconciliation's walks: a find on one of fullWalks
// with no filter and no sort.
func isWalk(c command) bool {
	coll, _ := c.cmd.Lookup("find").StringValueOK()
	return c.name == "find" && slices.Contains(fullWalks, coll) &&
		isEmpty(c.cmd.Lookup("filter")) && isEmpty(c.cmd.Lookup("sort"))
}

// isEmpty reports whether v is absent or an empty document.
func isEmpty(v bson.RawValue) bool {
	d, ok := v.DocumentOK()
	if !ok {
		return v.Type == 0
	}
	elems, err := d.Elements()
	return err == nil && len(elems) == 0
}

// filters returns the filters of the documents c selects: a find's filter, each
// statement's q of an update or a delete, an aggregate's leading $match.
func filters(c command) []bson.Raw {
	var out []bson.Raw
	switch c.name {
	case "find":
		f, _ := c.cmd.Lookup("filter").DocumentOK()
		out = append(out, f)
	case "update", "delete":
		stmts, _ := c.cmd.Lookup(c.name + "s").ArrayOK()
		vals, _ := stmts.Values()
		for _, st := range vals {
			d, _ := st.DocumentOK()
			q, _ := d.Lookup("q").DocumentOK()
			out = append(out, q)
		}
	case "aggregate":
		pipeline, _ := c.cmd.Lookup("pipeline").ArrayOK()
		stages, _ := pipeline.Values()
		if len(stages) == 0 {
			return []bson.Raw{nil}
		}
		d, _ := stages[0].DocumentOK()
		m, _ := d.Lookup("$match").DocumentOK()
		out = append(out, m)
	}
	return out
}

// generic are the fields the driver adds to every command (session, cluster time,
// concerns, routing): the explain command carries its own.
var generic = []string{
	"$db", "lsid", "$clusterTime", "txnNumber", "$readPreference", "readConcern", "writeConcern",
	"maxTimeMS", "apiVersion", "apiStrict", "apiDeprecationErrors", "autocommit", "startTransaction",
}

// explainable returns the commands to explain for c, without the generic fields: c
// itself for a find or an aggregate, one command per statement of an update or a delete
// (explain takes one). It returns none for a command it does not know.
func explainable(c command) []bson.D {
	elems, err := c.cmd.Elements()
	if err != nil {
		return nil
	}
	var base bson.D
	var stmts []bson.RawValue
	for _, e := range elems {
		switch k := e.Key(); {
		case slices.Contains(generic, k):
		case (c.name == "update" || c.name == "delete") && k == c.name+"s":
			arr, _ := e.Value().ArrayOK()
			stmts, _ = arr.Values()
		default:
			base = append(base, bson.E{Key: k, Value: e.Value()})
		}
	}
	switch c.name {
	case "find", "aggregate", "count", "distinct", "findAndModify":
		return []bson.D{base}
	case "update", "delete":
		out := make([]bson.D, len(stmts))
		for i, st := range stmts {
			out[i] = append(slices.Clone(base), bson.E{Key: c.name + "s", Value: bson.A{st}})
		}
		return out
	}
	return nil
}

// winningStages returns the stages of the winning plans in the output of explain, wherever
// the server puts them (queryPlanner.winningPlan, its queryPlan under the slot-based
// engine, an aggregate's $cursor stage, each shard's plan on a cluster), and none of the
// rejected plans.
func winningStages(plan bson.Raw) []string {
	var out []string
	var walk func(v bson.RawValue)
	walk = func(v bson.RawValue) {
		switch v.Type {
		case bson.TypeEmbeddedDocument:
			elems, _ := bson.Raw(v.Value).Elements()
			for _, e := range elems {
				switch e.Key() {
				case "rejectedPlans", "command", "originalCommand", "parsedQuery":
				case "stage":
					if st, ok := e.Value().StringValueOK(); ok {
						out = append(out, st)
					}
				default:
					walk(e.Value())
				}
			}
		case bson.TypeArray:
			vals, _ := bson.RawArray(v.Value).Values()
			for _, x := range vals {
				walk(x)
			}
		}
	}
	walk(bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: plan})
	return out
}

// readsIndex reports whether a plan stage reads an index: an index scan, the _id lookup,
// or one of the express paths (MongoDB 8) by _id or a unique index.
func readsIndex(stage string) bool {
	switch stage {
	case "IXSCAN", "IDHACK", "COUNT_SCAN", "DISTINCT_SCAN":
		return true
	}
	return strings.HasPrefix(stage, "EXPRESS_")
}
