// Package store is the contract of the store: what the worker, the ingest's reads,
// webhooks, the janitor and reconciliation need of it, which two engines implement and
// one conformance suite (this package's tests) holds them to:
//
//   - sqlite (package sqlitestore), the embedded default: one database file on one
//     machine, shared by the ingest and any number of workers there;
//   - mongodb (package mongostore): a MongoDB replica set or sharded cluster, for more
//     than one machine (FerretDB locally).
package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/store/mongostore"
	"github.com/billing/billing/internal/store/sqlitestore"
	"github.com/billing/billing/internal/webhook"
)

// The engines, as BILLING_STORE names them.
const (
	EngineSQLite  = "sqlite"
	EngineMongoDB = "mongodb"
)

// Engines are the engines Open knows, the default first.
var Engines = []string{EngineSQLite, EngineMongoDB}

// Config chooses and locates the store.
type Config struct {
	// Engine is EngineSQLite or EngineMongoDB.
	Engine string
	// SQLitePath is the database file, for EngineSQLite.
	SQLitePath string
	// MongoURI and MongoDatabase locate the database, for EngineMongoDB.
	MongoURI, MongoDatabase string
}

// Open opens the store cfg names, creating or upgrading its schema (indexes) if needed.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (Store, error) {
	switch cfg.Engine {
	case EngineSQLite:
		return sqlitestore.Open(ctx, cfg.SQLitePath, logger)
	case EngineMongoDB:
		return mongostore.Open(ctx, cfg.MongoURI, cfg.MongoDatabase, logger)
	}
	return nil, fmt.Errorf("unknown store engine %q", cfg.Engine)
}

// Store is everything the services need of the store. Every read is scoped by merchant
// where the API's is; every write is idempotent by a key decided before it (docs/design.md,
// rule 1). Errors are those of package charge: ErrNotFound, ErrUnavailable (retry),
// ErrRejected (never retry), ErrConflict.
type Store interface {
	// Charges and their transition logs.
	GetCharge(ctx context.Context, merchant, id string) (charge.Charge, error)
	ListCharges(ctx context.Context, merchant string, p charge.ListParams) (charges []charge.Charge, hasMore bool, err error)
	ChargesByID(ctx context.Context, ids []string) (map[string]charge.Charge, error)
	InsertCharges(ctx context.Context, cs []charge.Charge) (existing []string, err error)
	ClaimTransitions(ctx context.Context, ts []charge.Transition) (lost []string, err error)
	TransitionsFrom(ctx context.Context, from map[string]int) (map[string][]charge.Transition, error)
	SaveCharges(ctx context.Context, cs []charge.Charge) error

	// Refunds, events, the ledger, dead letters.
	GetRefund(ctx context.Context, merchant, id string) (charge.Refund, error)
	ListRefunds(ctx context.Context, merchant string, p charge.RefundListParams) (refunds []charge.Refund, hasMore bool, err error)
	InsertRefunds(ctx context.Context, rs []charge.Refund) error
	InsertEvents(ctx context.Context, es []charge.Event) error
	GetEvent(ctx context.Context, merchant, id string) (charge.Event, error)
	ListEvents(ctx context.Context, merchant, eventType string, limit int, startingAfter string) ([]charge.Event, bool, error)
	InsertLedgerEntries(ctx context.Context, es []charge.LedgerEntry) error
	Balance(ctx context.Context, merchant string) (charge.Balance, error)
	InsertDeadLetters(ctx context.Context, ds []charge.DeadLetter) error
	DeadLetters(ctx context.Context) ([]charge.DeadLetter, error)
	DeleteDeadLetter(ctx context.Context, id string) error

	// Webhook endpoints, delivery runs and attempts.
	InsertEndpoint(ctx context.Context, e webhook.Endpoint) error
	Endpoint(ctx context.Context, id string) (webhook.Endpoint, error)
	ListEndpoints(ctx context.Context, merchant string, limit int, startingAfter string) ([]webhook.Endpoint, bool, error)
	EnabledEndpoints(ctx context.Context, merchants []string) (map[string][]webhook.Endpoint, error)
	// DisabledEndpoints is for operators: the newest disabled endpoints of every merchant.
	DisabledEndpoints(ctx context.Context, limit int) ([]webhook.Endpoint, error)
	SaveEndpoint(ctx context.Context, e webhook.Endpoint) error
	SetEndpointSecrets(ctx context.Context, id string, secrets []webhook.SealedSecret, updatedAt time.Time) error
	SetEndpointHealth(ctx context.Context, id string, failingSince *time.Time, disabledReason string) error
	DeleteEndpoint(ctx context.Context, id string) error
	Run(ctx context.Context, key string) (int, error)
	SaveRun(ctx context.Context, key string, attempts int) error
	InsertDelivery(ctx context.Context, d webhook.Delivery) error
	ListDeliveries(ctx context.Context, endpoint string, limit int, startingAfter string) ([]webhook.Delivery, bool, error)

	// Retention: events and delivery attempts created before t.
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)

	// Reconciliation reads everything, in no particular order.
	EachCharge(ctx context.Context, f func(charge.Charge) error) error
	EachTransition(ctx context.Context, f func(charge.Transition) error) error
	EachRefund(ctx context.Context, f func(charge.Refund) error) error
	EachLedgerEntry(ctx context.Context, f func(charge.LedgerEntry) error) error

	Ping(ctx context.Context) error
	Close(ctx context.Context) error
}
