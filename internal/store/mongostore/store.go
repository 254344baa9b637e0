// Package mongostore is the mongodb engine of the store (package store): charges, events
// and dead letters in MongoDB (or FerretDB, which speaks its protocol), for more than one
// machine. It is the only package that imports the MongoDB driver: driver
// errors are translated here into the sentinel errors of package charge.
//
// Every write is idempotent by a key decided before the write (docs/design.md, rule 1), and
// batches go out as single unordered bulk writes, so that one failed item does not stop
// the others. Nothing relies on what FerretDB lacks: transactions, TTL indexes, $expr.
package mongostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/billing/billing/internal/charge"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
)

// The collections of the store.
//
// Sharding (deploy/README.md, "Sharding the mongodb store"). On a sharded cluster the
// collections that grow with the traffic are sharded so that each read the API makes for
// a merchant goes to one shard:
//
//   - charges, events, refunds, ledger_entries: {merchant: 1, _id: 1}. Every read the API
//     makes names the merchant (byMerchantID, the lists, Balance), so mongos targets the
//     shard holding that merchant's range; _id in the key lets a large merchant's
//     documents split into several chunks. The inserts stay idempotent: an id always
//     comes with the same merchant, so a redelivered document lands on the shard of the
//     first and collides with it there (a cluster enforces a unique _id only within a
//     shard, or across shards when _id is the shard key). A shard key's index must be
//     ascending, so the descending list index {merchant: 1, _id: -1} cannot serve:
//     sh.shardCollection creates {merchant: 1, _id: 1} on an empty collection.
//   - balance_steps, balance_heads: {merchant: 1, _id: 1}. The running totals of the
//     balance (balances.go), read and written by byMerchantID; their _id begins with
//     the merchant.
//   - ledger_folds: {_id: "hashed"}, read and inserted by transaction id alone.
//   - transitions: {_id: "hashed"}. A transition has no merchant; its id is
//     "<charge id>/<sequence>", and it is read (TransitionsFrom) and claimed
//     (ClaimTransitions, which relies on the duplicate _id error) by that id alone. With
//     _id as the key each read and each claim goes to one shard and two claims of the
//     same step meet on the same shard; hashed, because charge ids grow with time, and a
//     ranged _id would send every new transition to the last chunk.
//   - dead_letters, webhook_endpoints, webhook_runs, webhook_deliveries stay unsharded,
//     on the database's primary shard: they are small, or kept small by DeleteBefore, and
//     webhook_endpoints and webhook_runs are read by a bare id.
//
// What the contract does not scope by merchant goes to every shard of a sharded
// collection: ChargesByID (the workers' read of a batch, by id alone), DeleteBefore on
// events and the reconciliation walks (Each*).
const (
	collCharges     = "charges"
	collEvents      = "events"
	collDeadLetters = "dead_letters"
	collTransitions = "transitions"
	collRefunds     = "refunds"
	collLedger      = "ledger_entries"
	collLedgerFolds = "ledger_folds"
	collBalSteps    = "balance_steps"
	collBalHeads    = "balance_heads"

	collWebhookEndpoints  = "webhook_endpoints"
	collWebhookRuns       = "webhook_runs"
	collWebhookDeliveries = "webhook_deliveries"
)

// Client defaults; options given in the URI take precedence.
const (
	serverSelectionTimeout = 5 * time.Second
	connectTimeout         = 5 * time.Second
)

// defaultListLimit is the page size of a list call that asks for none.
const defaultListLimit = 10

// Store reads and writes the billing collections of one database. It is safe for
// concurrent use.
type Store struct {
	client      *mongo.Client
	db          *mongo.Database
	charges     *mongo.Collection
	events      *mongo.Collection
	deadLetters *mongo.Collection
	transitions *mongo.Collection
	refunds     *mongo.Collection
	ledger      *mongo.Collection

	// The balances (balances.go).
	ledgerFolds  *mongo.Collection
	balanceSteps *mongo.Collection
	balanceHeads *mongo.Collection

	webhookEndpoints  *mongo.Collection
	webhookRuns       *mongo.Collection
	webhookDeliveries *mongo.Collection

	// ferret is true when the server is FerretDB, whose conditional updates are not
	// atomic (see SaveCharges).
	ferret bool
	logger *slog.Logger
	// fault, when a test sets it, is called between the writes of a fold and fails the
	// fold where it returns an error (export_test.go).
	fault func(foldPoint) error
}

// Open connects to the server at uri, checks that it answers and creates the indexes of
// database (creating existing indexes again is a no-op). Server selection gives up after
// 5 s unless the URI says otherwise; writes use majority write concern and are retried
// once where the server supports it. A nil logger discards.
func Open(ctx context.Context, uri, database string, logger *slog.Logger) (*Store, error) {
	return open(ctx, uri, database, logger, nil)
}

// open is Open, with monitor (if not nil) watching every command the client sends: the
// test of the query plans (explain_test.go) collects them with it.
func open(ctx context.Context, uri, database string, logger *slog.Logger, monitor *event.CommandMonitor) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := options.Client().
		SetAppName("billing").
		SetServerSelectionTimeout(serverSelectionTimeout).
		SetConnectTimeout(connectTimeout).
		SetRetryWrites(true).
		SetRetryReads(true).
		SetWriteConcern(writeconcern.Majority()).
		SetRegistry(registry).
		ApplyURI(uri)
	if monitor != nil {
		opts.SetMonitor(monitor)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to MongoDB: %w", translate(err))
	}
	db := client.Database(database)
	s := &Store{
		client:      client,
		db:          db,
		charges:     db.Collection(collCharges),
		events:      db.Collection(collEvents),
		deadLetters: db.Collection(collDeadLetters),
		transitions: db.Collection(collTransitions),
		refunds:     db.Collection(collRefunds),
		ledger:      db.Collection(collLedger),

		ledgerFolds:  db.Collection(collLedgerFolds),
		balanceSteps: db.Collection(collBalSteps),
		balanceHeads: db.Collection(collBalHeads),

		webhookEndpoints:  db.Collection(collWebhookEndpoints),
		webhookRuns:       db.Collection(collWebhookRuns),
		webhookDeliveries: db.Collection(collWebhookDeliveries),

		logger: logger,
	}
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	var info bson.M
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("reading server build info: %w", translate(err))
	}
	_, s.ferret = info["ferretdbVersion"]
	if err := s.createIndexes(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	logger.DebugContext(ctx, "store opened", "database", database)
	return s, nil
}

// AtomicConditions reports whether the server applies a conditional update atomically
// (MongoDB does; FerretDB does not).
func (s *Store) AtomicConditions() bool { return !s.ferret }

// Close disconnects from the server, waiting for operations in progress until ctx is done.
func (s *Store) Close(ctx context.Context) error {
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnecting from MongoDB: %w", translate(err))
	}
	return nil
}

// Ping checks that the server answers. Readiness probes call it.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("pinging MongoDB: %w", translate(err))
	}
	return nil
}

// indexes lists, per collection, the indexes that the queries of this package use: each
// list and filter has one shaped {its equality fields..., its sort} ({merchant: 1,
// status: 1, _id: -1} for ListCharges by status), so that it reads its page in index
// order, with no sort and no scan; reads by id use _id_ (or merchant_id). TestQueryPlans
// (explain_test.go) checks every query on a MongoDB. Names are explicit so that creating
// them again is recognised as a no-op. It is a function, not a variable: the driver
// writes into the options it is given, so sharing one set between concurrent Opens is a
// data race.
func indexes() map[string][]mongo.IndexModel {
	return map[string][]mongo.IndexModel{
		collCharges: {
			{Keys: bson.D{{Key: "merchant", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("merchant_id")},
			{Keys: bson.D{{Key: "merchant", Value: 1}, {Key: "status", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("merchant_status_id")},
			{Keys: bson.D{{Key: "merchant", Value: 1}, {Key: "customer", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("merchant_customer_id")},
		},
		collTransitions: {
			{Keys: bson.D{{Key: "charge_id", Value: 1}, {Key: "sequence", Value: 1}}, Options: options.Index().SetName("charge_id_sequence")},
		},
		collRefunds: {
			{Keys: bson.D{{Key: "merchant", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("merchant_id")},
			{Keys: bson.D{{Key: "merchant", Value: 1}, {Key: "charge", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("merchant_charge_id")},
		},
		collLedger: {
			{Keys: bson.D{{Key: "charge_id", Value: 1}}, Options: options.Index().SetName("charge_id")},
		},
		collEvents: {
			{Keys: bson.D{{Key: "merchant", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("merchant_id")},
			{Keys: bson.D{{Key: "merchant", Value: 1}, {Key: "type", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("merchant_type_id")},
			{Keys: bson.D{{Key: "charge_id", Value: 1}, {Key: "sequence", Value: 1}}, Options: options.Index().SetName("charge_id_sequence")},
			{Keys: bson.D{{Key: "created_at", Value: 1}}, Options: options.Index().SetName("created_at")}, // DeleteBefore
		},
		collWebhookEndpoints: {
			{Keys: bson.D{{Key: "merchant", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("merchant_id")},
			// EnabledEndpoints: merchant $in, status, oldest first.
			{Keys: bson.D{{Key: "merchant", Value: 1}, {Key: "status", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("merchant_status_id")},
			// DisabledEndpoints: status, of every merchant, newest first.
			{Keys: bson.D{{Key: "status", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("status_id")},
		},
		collWebhookRuns: {
			{Keys: bson.D{{Key: "created_at", Value: 1}}, Options: options.Index().SetName("created_at")}, // DeleteBefore
		},
		collWebhookDeliveries: {
			{Keys: bson.D{{Key: "endpoint", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("endpoint_id")},
			{Keys: bson.D{{Key: "created_at", Value: 1}}, Options: options.Index().SetName("created_at")}, // DeleteBefore
		},
	}
}

// createIndexes creates the indexes one at a time: given several indexes that all exist
// already, FerretDB 1.24's createIndexes panics (it deletes from its filtered list by the
// index of the unfiltered one) and drops the connection. One at a time, an existing index
// is a no-op on both servers.
func (s *Store) createIndexes(ctx context.Context) error {
	for coll, models := range indexes() {
		iv := s.db.Collection(coll).Indexes()
		for _, m := range models {
			if _, err := iv.CreateOne(ctx, m); err != nil {
				return fmt.Errorf("creating indexes of %s: %w", coll, translate(err))
			}
		}
	}
	return nil
}

// translate turns a driver error into one that callers can match with errors.Is against
// the sentinels of package charge: no document is charge.ErrNotFound; a server that cannot
// be reached or answer in time is charge.ErrUnavailable (still wrapping the cause). Other
// errors are returned as they are.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return charge.ErrNotFound
	case unavailable(err):
		return fmt.Errorf("%w: %w", charge.ErrUnavailable, err)
	case rejected(err):
		return fmt.Errorf("%w: %w", charge.ErrRejected, err)
	}
	return err
}

// rejectedCodes are write error codes that mean the server refuses the document itself
// (its field names, its shape, its size): the same write would fail again.
var rejectedCodes = []int{
	2,     // BadValue: FerretDB's code for every document it will not store
	22,    // InvalidBSON
	52,    // DollarPrefixedFieldName
	55,    // InvalidDBRef
	56,    // EmptyFieldName
	57,    // DottedFieldName
	121,   // DocumentValidationFailure
	10334, // BSONObjectTooLarge
	17419, // the document grew too large in an update
	17420, // the document is too large to be stored
}

// rejected reports whether err refuses a document for good: a write error (of one
// document, not of the command) with one of rejectedCodes, or a document too large for
// the driver to send at all.
func rejected(err error) bool {
	if errors.Is(err, driver.ErrDocumentTooLarge) {
		return true
	}
	var we mongo.WriteException
	var bwe mongo.BulkWriteException
	var codes []int
	switch {
	case errors.As(err, &bwe):
		for _, e := range bwe.WriteErrors {
			codes = append(codes, e.Code)
		}
	case errors.As(err, &we):
		for _, e := range we.WriteErrors {
			codes = append(codes, e.Code)
		}
	}
	for _, c := range codes {
		if slices.Contains(rejectedCodes, c) {
			return true
		}
	}
	return false
}

// transientCodes are server error codes that mean the server could not take the request
// right now (shutting down, stepping down, no primary), not that the request is wrong.
var transientCodes = []int{
	6,     // HostUnreachable
	7,     // HostNotFound
	89,    // NetworkTimeout
	91,    // ShutdownInProgress
	189,   // PrimarySteppedDown
	262,   // ExceededTimeLimit
	9001,  // SocketException
	10107, // NotWritablePrimary
	11600, // InterruptedAtShutdown
	11602, // InterruptedDueToReplStateChange
	13435, // NotPrimaryNoSecondaryOk
	13436, // NotPrimaryOrSecondary
}

// unavailable reports whether err says the server could not be reached or could not
// answer in time: network errors, timeouts (server selection included: it wraps the
// context error), a disconnected client, a server on its way down.
func unavailable(err error) bool {
	if mongo.IsNetworkError(err) || mongo.IsTimeout(err) || errors.Is(err, mongo.ErrClientDisconnected) {
		return true
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		if se.HasErrorLabel("RetryableWriteError") {
			return true
		}
		for _, code := range transientCodes {
			if se.HasErrorCode(code) {
				return true
			}
		}
	}
	return false
}

// duplicateKeyCodes are the write error codes of a unique index violation.
var duplicateKeyCodes = map[int]bool{11000: true, 11001: true, 12582: true}

// withoutDuplicates returns err with the duplicate-key failures of single items of a bulk
// write removed, or nil if those were all it held. Idempotent writes use it: the item
// that collided is already there.
func withoutDuplicates(err error) error {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) {
		return err
	}
	rest := bwe.WriteErrors[:0:0]
	for _, we := range bwe.WriteErrors {
		if !duplicateKeyCodes[we.Code] {
			rest = append(rest, we)
		}
	}
	if len(rest) == 0 && bwe.WriteConcernError == nil {
		return nil
	}
	bwe.WriteErrors = rest
	return bwe
}

// setOnInsert returns an upsert of doc keyed by its _id that inserts it whole if no
// document has that _id and changes nothing otherwise. _id is left out of $setOnInsert:
// the upsert takes it from the filter.
func setOnInsert(doc any) (mongo.WriteModel, error) {
	var buf bytes.Buffer
	enc := bson.NewEncoder(bson.NewDocumentWriter(&buf))
	enc.SetRegistry(registry)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	elems, err := bson.Raw(raw).Elements()
	if err != nil {
		return nil, err
	}
	var id bson.RawValue
	fields := make(bson.D, 0, len(elems))
	for _, e := range elems {
		if e.Key() == "_id" {
			id = e.Value()
			continue
		}
		fields = append(fields, bson.E{Key: e.Key(), Value: e.Value()})
	}
	if id.Type == 0 {
		return nil, errors.New("document has no _id")
	}
	return mongo.NewUpdateOneModel().
		SetFilter(bson.D{{Key: "_id", Value: id}}).
		SetUpdate(bson.D{{Key: "$setOnInsert", Value: fields}}).
		SetUpsert(true), nil
}

// listLimit returns the page size for limit.
func listLimit(limit int) int {
	if limit <= 0 {
		return defaultListLimit
	}
	return limit
}
