package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema's versions: migrations[i] takes a database from version i to
// version i+1, and PRAGMA user_version records how many have been applied. A migration is
// never edited once released; a change is a new one appended.
//
// Tables are STRICT (a value of the wrong type is an error, not silently stored) and
// have columns for what is filtered or sorted on; the rest of a record is one JSON column
// written by this package's own row types, never by the domain types' tags.
// Times are integer milliseconds since the Unix epoch, UTC, as BSON stores them. Every
// query has an index (plan_test.go checks): ids sort by creation time, so
// "newest first" is id DESC on an index that ends in id.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE charges (
	id       TEXT PRIMARY KEY,
	merchant TEXT NOT NULL,
	status   TEXT NOT NULL,
	version  INTEGER NOT NULL,
	accepted TEXT NOT NULL, -- JSON: what the charge was accepted with, written once
	state    TEXT NOT NULL  -- JSON: what its history made of it, rewritten forward by SaveCharges
) STRICT;
CREATE INDEX charges_merchant_id ON charges (merchant, id);
CREATE INDEX charges_merchant_status_id ON charges (merchant, status, id);

-- The log: the primary key arbitrates two workers claiming the same step of a charge.
CREATE TABLE transitions (
	charge_id TEXT NOT NULL,
	sequence  INTEGER NOT NULL,
	doc       TEXT NOT NULL,
	PRIMARY KEY (charge_id, sequence)
) STRICT, WITHOUT ROWID;

CREATE TABLE refunds (
	id        TEXT PRIMARY KEY,
	merchant  TEXT NOT NULL,
	charge_id TEXT NOT NULL,
	doc       TEXT NOT NULL
) STRICT;
CREATE INDEX refunds_merchant_id ON refunds (merchant, id);
CREATE INDEX refunds_merchant_charge_id ON refunds (merchant, charge_id, id);

CREATE TABLE events (
	id         TEXT PRIMARY KEY,
	merchant   TEXT NOT NULL,
	type       TEXT NOT NULL,
	charge_id  TEXT NOT NULL,
	sequence   INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	data       TEXT NOT NULL
) STRICT;
CREATE INDEX events_merchant_id ON events (merchant, id);
CREATE INDEX events_merchant_type_id ON events (merchant, type, id);
CREATE INDEX events_created_at ON events (created_at);

CREATE TABLE ledger_entries (
	id          TEXT PRIMARY KEY,
	transaction_id TEXT NOT NULL,
	merchant    TEXT NOT NULL,
	charge_id   TEXT NOT NULL,
	refund_id   TEXT NOT NULL,
	kind        TEXT NOT NULL,
	account     TEXT NOT NULL,
	currency    TEXT NOT NULL,
	amount      INTEGER NOT NULL,
	created_at  INTEGER NOT NULL
) STRICT;

-- The sums of the ledger, kept in the transaction that inserts its entries, so that a
-- balance is read, not computed.
CREATE TABLE balances (
	merchant TEXT NOT NULL,
	currency TEXT NOT NULL,
	account  TEXT NOT NULL,
	amount   INTEGER NOT NULL,
	PRIMARY KEY (merchant, currency, account)
) STRICT, WITHOUT ROWID;

CREATE TABLE dead_letters (
	id       TEXT PRIMARY KEY,
	subject  TEXT NOT NULL,
	data     BLOB,
	reason   TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	at       INTEGER NOT NULL
) STRICT;

CREATE TABLE webhook_endpoints (
	id              TEXT PRIMARY KEY,
	merchant        TEXT NOT NULL,
	url             TEXT NOT NULL,
	enabled_events  TEXT NOT NULL, -- JSON array
	description     TEXT,
	status          TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	secrets         TEXT NOT NULL, -- JSON array of sealed secrets
	version         INTEGER NOT NULL,
	failing_since   INTEGER,
	disabled_reason TEXT NOT NULL
) STRICT;
CREATE INDEX webhook_endpoints_merchant_id ON webhook_endpoints (merchant, id);

CREATE TABLE webhook_runs (
	key        TEXT PRIMARY KEY,
	attempts   INTEGER NOT NULL,
	created_at INTEGER NOT NULL -- when the run last moved
) STRICT;
CREATE INDEX webhook_runs_created_at ON webhook_runs (created_at);

CREATE TABLE webhook_deliveries (
	id              TEXT PRIMARY KEY,
	merchant        TEXT NOT NULL,
	endpoint        TEXT NOT NULL,
	event           TEXT NOT NULL,
	attempt         INTEGER NOT NULL,
	response_status INTEGER,
	duration_ms     INTEGER NOT NULL,
	error           TEXT,
	next_attempt_at INTEGER,
	created_at      INTEGER NOT NULL,
	key             TEXT NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_endpoint_id ON webhook_deliveries (endpoint, id);
CREATE INDEX webhook_deliveries_created_at ON webhook_deliveries (created_at);
`,
	// 2: a dead letter keeps its message's headers (an event's merchant), for a replay.
	`ALTER TABLE dead_letters ADD COLUMN headers TEXT; -- JSON object, NULL for none`,
	// 3: the disabled endpoints of every merchant, newest first (DisabledEndpoints). Partial:
	// it holds the few disabled endpoints only, and costs the enabled ones nothing.
	`CREATE INDEX webhook_endpoints_disabled_id ON webhook_endpoints (id) WHERE status = 'disabled';`,
	// 4: a merchant's charges of one customer, newest first (ListCharges with Customer): an
	// index on the customer inside the accepted JSON, which queries name by the same
	// expression.
	`CREATE INDEX charges_merchant_customer_id ON charges (merchant, accepted ->> '$.customer', id);`,
}

// migrate brings the schema up to date. It runs in one BEGIN IMMEDIATE transaction, so
// of several processes opening the database at once one migrates while the others wait
// for the write lock (busy_timeout) and then find nothing left to do; a crash midway
// leaves the schema as it was. A database newer than this binary is refused: this code
// does not know what the later versions mean.
func migrate(ctx context.Context, db *sql.DB) (from, to int, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = tx.Rollback() }()
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&from); err != nil {
		return 0, 0, err
	}
	to = len(migrations)
	switch {
	case from == to:
		return from, to, nil
	case from > to:
		return from, to, fmt.Errorf("the database's schema is version %d, newer than this program's (%d)", from, to)
	}
	for v := from; v < to; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return from, to, fmt.Errorf("migrating to version %d: %w", v+1, err)
		}
	}
	// PRAGMA takes no parameters; to is a constant of this program.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", to)); err != nil {
		return from, to, err
	}
	return from, to, tx.Commit()
}
