package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// schema is the peer's own tables: the rows our worker writes for a charge, with the
// primary keys and secondary indexes of the sqlite engine's schema
// (internal/store/sqlitestore/schema.go), and the idempotency keys. Whatever is not
// filtered or sorted on is one JSON document, as there. Every statement can run again.
const schema = `
CREATE TABLE IF NOT EXISTS idempotency_keys (
	merchant     text        NOT NULL,
	key          text        NOT NULL,
	request_hash bytea       NOT NULL, -- SHA-256 of the request body
	response     bytea       NOT NULL, -- the 202 body, replayed byte for byte
	created_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (merchant, key)
);

CREATE TABLE IF NOT EXISTS charges (
	id       text   PRIMARY KEY,
	merchant text   NOT NULL,
	status   text   NOT NULL,
	amount   bigint NOT NULL,
	currency text   NOT NULL,
	doc      jsonb  NOT NULL -- the charge as the API shows it
);
CREATE INDEX IF NOT EXISTS charges_merchant_id ON charges (merchant, id);
CREATE INDEX IF NOT EXISTS charges_merchant_status_id ON charges (merchant, status, id);

CREATE TABLE IF NOT EXISTS events (
	id         text        PRIMARY KEY,
	merchant   text        NOT NULL,
	type       text        NOT NULL,
	charge_id  text        NOT NULL,
	sequence   integer     NOT NULL,
	created_at timestamptz NOT NULL,
	data       jsonb       NOT NULL -- the event as the API shows it
);
CREATE INDEX IF NOT EXISTS events_merchant_id ON events (merchant, id);
CREATE INDEX IF NOT EXISTS events_merchant_type_id ON events (merchant, type, id);
CREATE INDEX IF NOT EXISTS events_created_at ON events (created_at);

CREATE TABLE IF NOT EXISTS ledger_entries (
	id             text        PRIMARY KEY,
	transaction_id text        NOT NULL,
	merchant       text        NOT NULL,
	charge_id      text        NOT NULL,
	refund_id      text        NOT NULL,
	kind           text        NOT NULL,
	account        text        NOT NULL,
	currency       text        NOT NULL,
	amount         bigint      NOT NULL,
	created_at     timestamptz NOT NULL
);
`

// migrateDSN connects to dsn and migrates it (see migrate).
func migrateDSN(ctx context.Context, dsn string) (int, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer pool.Close()
	return migrate(ctx, pool)
}

// migrate brings River's schema up to date with rivermigrate, then creates the peer's
// tables. It returns how many of River's migrations it applied; none the second time.
func migrate(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return 0, fmt.Errorf("river migrator: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return 0, fmt.Errorf("river migrations: %w", err)
	}
	if _, err := pool.Exec(ctx, schema); err != nil {
		return len(res.Versions), fmt.Errorf("creating the peer's tables: %w", err)
	}
	return len(res.Versions), nil
}
