package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/webhook"
)

var _ webhook.Store = (*Store)(nil)

// An endpoint's row has a column per field, since each of its writers (SaveEndpoint,
// SetEndpointSecrets, SetEndpointHealth) writes its own fields and no other; the lists
// are JSON. The plain secret (Endpoint.Secret) has no column: it is never written.

// secretRow is a webhook.SealedSecret.
type secretRow struct {
	Sealed    []byte `json:"sealed"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt *int64 `json:"expires_at,omitempty"`
}

func encodeSecrets(ss []webhook.SealedSecret) (string, error) {
	rows := mapSlice(ss, func(s webhook.SealedSecret) secretRow {
		return secretRow{Sealed: s.Sealed, CreatedAt: millis(s.CreatedAt), ExpiresAt: millisPtr(s.ExpiresAt)}
	})
	b, err := json.Marshal(rows)
	return string(b), err
}

func decodeSecrets(b []byte) ([]webhook.SealedSecret, error) {
	var rows []secretRow
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, err
	}
	return mapSlice(rows, func(r secretRow) webhook.SealedSecret {
		return webhook.SealedSecret{Sealed: r.Sealed, CreatedAt: fromMillis(r.CreatedAt), ExpiresAt: fromMillisPtr(r.ExpiresAt)}
	}), nil
}

// endpointColumns are the columns scanEndpoint reads, in its order.
const endpointColumns = "id, merchant, url, enabled_events, description, status, created_at, updated_at, secrets, version, failing_since, disabled_reason"

func scanEndpoint(sc scanner) (webhook.Endpoint, error) {
	var e webhook.Endpoint
	var events, secrets []byte
	var createdAt, updatedAt int64
	var failingSince *int64
	if err := sc.Scan(&e.ID, &e.Merchant, &e.URL, &events, &e.Description, &e.Status, &createdAt, &updatedAt,
		&secrets, &e.Version, &failingSince, &e.DisabledReason); err != nil {
		return webhook.Endpoint{}, err
	}
	if err := json.Unmarshal(events, &e.EnabledEvents); err != nil {
		return webhook.Endpoint{}, fmt.Errorf("decoding webhook endpoint %s: %w", e.ID, err)
	}
	var err error
	if e.Secrets, err = decodeSecrets(secrets); err != nil {
		return webhook.Endpoint{}, fmt.Errorf("decoding webhook endpoint %s: %w", e.ID, err)
	}
	e.CreatedAt, e.UpdatedAt, e.FailingSince = fromMillis(createdAt), fromMillis(updatedAt), fromMillisPtr(failingSince)
	return e, nil
}

// InsertEndpoint stores a new endpoint. It is idempotent by id: an endpoint already
// stored with that id is left as it is and is not an error. Only the sealed secrets are
// stored; the plain one (e.Secret) is never written.
func (s *Store) InsertEndpoint(ctx context.Context, e webhook.Endpoint) error {
	what := fmt.Sprintf("inserting webhook endpoint %s", e.ID)
	events, err := json.Marshal(e.EnabledEvents)
	if err != nil {
		return s.wrap(what, rejected("encoding its events: %v", err))
	}
	secrets, err := encodeSecrets(e.Secrets)
	if err != nil {
		return s.wrap(what, rejected("encoding its secrets: %v", err))
	}
	_, err = s.exec(ctx, "INSERT INTO webhook_endpoints ("+endpointColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
		e.ID, e.Merchant, e.URL, string(events), e.Description, string(e.Status), millis(e.CreatedAt), millis(e.UpdatedAt),
		secrets, e.Version, millisPtr(e.FailingSince), e.DisabledReason)
	return s.wrap(what, err)
}

// Endpoint returns the endpoint id as stored, whoever its merchant (callers check it;
// call Public before showing it). It returns charge.ErrNotFound if there is none.
func (s *Store) Endpoint(ctx context.Context, id string) (webhook.Endpoint, error) {
	e, err := scanEndpoint(s.queryRow(ctx, "SELECT "+endpointColumns+" FROM webhook_endpoints WHERE id = ?", id))
	if err != nil {
		return webhook.Endpoint{}, s.wrap(fmt.Sprintf("getting webhook endpoint %s", id), err)
	}
	return e, nil
}

// ListEndpoints returns a page of merchant's endpoints, newest first: at most limit (10 if
// it is not positive), only those older than startingAfter when it is set. The bool
// reports whether older endpoints remain.
func (s *Store) ListEndpoints(ctx context.Context, merchant string, limit int, startingAfter string) ([]webhook.Endpoint, bool, error) {
	q := page{columns: endpointColumns, table: "webhook_endpoints"}
	q.and("merchant = ?", merchant)
	es, hasMore, err := list(ctx, s, q, limit, startingAfter, scanEndpoint)
	if err != nil {
		return nil, false, s.wrap("listing webhook endpoints", err)
	}
	return es, hasMore, nil
}

// EnabledEndpoints returns the enabled endpoints of each of merchants, oldest first;
// merchants with none are absent from the map. It is one query for the whole batch, the
// merchants passed as one JSON array.
func (s *Store) EnabledEndpoints(ctx context.Context, merchants []string) (map[string][]webhook.Endpoint, error) {
	out := make(map[string][]webhook.Endpoint)
	if len(merchants) == 0 {
		return out, nil
	}
	what := fmt.Sprintf("reading enabled webhook endpoints of %d merchants", len(merchants))
	arg, err := json.Marshal(merchants)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	rows, err := s.query(ctx, "SELECT "+endpointColumns+" FROM webhook_endpoints"+
		" WHERE merchant IN (SELECT value FROM json_each(?)) AND status = ? ORDER BY merchant, id", string(arg), string(webhook.StatusEnabled))
	if err != nil {
		return nil, s.wrap(what, err)
	}
	es, err := scanAll(rows, scanEndpoint)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	for _, e := range es {
		out[e.Merchant] = append(out[e.Merchant], e)
	}
	return out, nil
}

// DisabledEndpoints returns up to limit disabled endpoints (10 if it is not positive),
// whatever their merchant, newest first: what the operator page lists. The status is
// written into the statement, not bound, so that SQLite can match the partial index
// webhook_endpoints_disabled_id (schema version 3).
func (s *Store) DisabledEndpoints(ctx context.Context, limit int) ([]webhook.Endpoint, error) {
	if limit <= 0 {
		limit = defaultListLimit
	}
	rows, err := s.query(ctx, "SELECT "+endpointColumns+" FROM webhook_endpoints"+
		" WHERE status = '"+string(webhook.StatusDisabled)+"' ORDER BY id DESC LIMIT ?", limit)
	if err != nil {
		return nil, s.wrap("listing disabled webhook endpoints", err)
	}
	es, err := scanAll(rows, scanEndpoint)
	if err != nil {
		return nil, s.wrap("listing disabled webhook endpoints", err)
	}
	return es, nil
}

// SaveEndpoint writes what a merchant edits of an endpoint by id: url, enabled_events,
// description, status, updated_at and version; re-enabling also clears the recorded
// failures. Secrets and health have writers of their own (SetEndpointSecrets,
// SetEndpointHealth), so no edit can undo a rotation or a disabling made meanwhile. It
// returns charge.ErrNotFound if there is no such endpoint.
func (s *Store) SaveEndpoint(ctx context.Context, e webhook.Endpoint) error {
	what := fmt.Sprintf("saving webhook endpoint %s", e.ID)
	events, err := json.Marshal(e.EnabledEvents)
	if err != nil {
		return s.wrap(what, rejected("encoding its events: %v", err))
	}
	query := "UPDATE webhook_endpoints SET url = ?, enabled_events = ?, description = ?, status = ?, updated_at = ?, version = ?"
	if e.Status == webhook.StatusEnabled && e.FailingSince == nil {
		query += ", failing_since = NULL, disabled_reason = ''"
	}
	res, err := s.exec(ctx, query+" WHERE id = ?",
		e.URL, string(events), e.Description, string(e.Status), millis(e.UpdatedAt), e.Version, e.ID)
	return s.wrap(what, updatedOne(res, err))
}

// SetEndpointSecrets writes an endpoint's secrets by id, and nothing else. It returns
// charge.ErrNotFound if there is no such endpoint.
func (s *Store) SetEndpointSecrets(ctx context.Context, id string, secrets []webhook.SealedSecret, updatedAt time.Time) error {
	what := fmt.Sprintf("rotating the secret of webhook endpoint %s", id)
	encoded, err := encodeSecrets(secrets)
	if err != nil {
		return s.wrap(what, rejected("encoding its secrets: %v", err))
	}
	res, err := s.exec(ctx, "UPDATE webhook_endpoints SET secrets = ?, updated_at = ? WHERE id = ?", encoded, millis(updatedAt), id)
	return s.wrap(what, updatedOne(res, err))
}

// SetEndpointHealth records the health of the endpoint id: failing_since becomes
// failingSince (nil while it answers) and, when disabledReason is not empty, status
// becomes disabled with that reason. No other field is written (not even updated_at or
// version), so a merchant's edit made meanwhile stays. It returns charge.ErrNotFound if
// there is no such endpoint.
func (s *Store) SetEndpointHealth(ctx context.Context, id string, failingSince *time.Time, disabledReason string) error {
	query, args := "UPDATE webhook_endpoints SET failing_since = ?", []any{millisPtr(failingSince)}
	if disabledReason != "" {
		query += ", status = ?, disabled_reason = ?"
		args = append(args, string(webhook.StatusDisabled), disabledReason)
	}
	res, err := s.exec(ctx, query+" WHERE id = ?", append(args, id)...)
	return s.wrap(fmt.Sprintf("setting health of webhook endpoint %s", id), updatedOne(res, err))
}

// DeleteEndpoint removes the endpoint id, whoever its merchant (callers check it). It
// returns charge.ErrNotFound if there is none.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	res, err := s.exec(ctx, "DELETE FROM webhook_endpoints WHERE id = ?", id)
	return s.wrap(fmt.Sprintf("deleting webhook endpoint %s", id), updatedOne(res, err))
}

// updatedOne returns err, or charge.ErrNotFound if the statement that gave res changed
// no row.
func updatedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return charge.ErrNotFound
	}
	return nil
}

// Run returns how many attempts the run with the given key has made; 0 if none is recorded.
func (s *Store) Run(ctx context.Context, key string) (int, error) {
	var attempts int
	err := s.queryRow(ctx, "SELECT attempts FROM webhook_runs WHERE key = ?", key).Scan(&attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.wrap(fmt.Sprintf("reading webhook run %s", key), err)
	}
	return attempts, nil
}

// SaveRun records that the run with the given key has made attempts attempts: an upsert
// by key, which SQLite applies atomically, so concurrent first saves of a key all succeed.
func (s *Store) SaveRun(ctx context.Context, key string, attempts int) error {
	// created_at is when the run last moved: DeleteBefore sweeps runs idle past retention.
	_, err := s.exec(ctx, "INSERT INTO webhook_runs (key, attempts, created_at) VALUES (?, ?, ?)"+
		" ON CONFLICT (key) DO UPDATE SET attempts = excluded.attempts, created_at = excluded.created_at",
		key, attempts, millis(time.Now()))
	return s.wrap(fmt.Sprintf("saving webhook run %s", key), err)
}

// deliveryColumns are the columns scanDelivery reads, in its order.
const deliveryColumns = "id, merchant, endpoint, event, attempt, response_status, duration_ms, error, next_attempt_at, created_at, key"

func scanDelivery(sc scanner) (webhook.Delivery, error) {
	var d webhook.Delivery
	var nextAttemptAt *int64
	var createdAt int64
	if err := sc.Scan(&d.ID, &d.Merchant, &d.Endpoint, &d.Event, &d.Attempt, &d.ResponseStatus, &d.DurationMS,
		&d.Error, &nextAttemptAt, &createdAt, &d.Key); err != nil {
		return webhook.Delivery{}, err
	}
	d.NextAttemptAt, d.CreatedAt = fromMillisPtr(nextAttemptAt), fromMillis(createdAt)
	return d, nil
}

// InsertDelivery records one delivery attempt. It is idempotent by id: an attempt already
// recorded is left as it is and is not an error.
func (s *Store) InsertDelivery(ctx context.Context, d webhook.Delivery) error {
	_, err := s.exec(ctx, "INSERT INTO webhook_deliveries ("+deliveryColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
		d.ID, d.Merchant, d.Endpoint, d.Event, d.Attempt, d.ResponseStatus, d.DurationMS, d.Error, millisPtr(d.NextAttemptAt), millis(d.CreatedAt), d.Key)
	return s.wrap(fmt.Sprintf("inserting webhook delivery %s", d.ID), err)
}

// ListDeliveries returns a page of the delivery attempts to endpoint, newest first: at
// most limit (10 if it is not positive), only those older than startingAfter when it is
// set. The bool reports whether older attempts remain. It filters by endpoint alone:
// callers check that the endpoint is their merchant's.
func (s *Store) ListDeliveries(ctx context.Context, endpoint string, limit int, startingAfter string) ([]webhook.Delivery, bool, error) {
	q := page{columns: deliveryColumns, table: "webhook_deliveries"}
	q.and("endpoint = ?", endpoint)
	ds, hasMore, err := list(ctx, s, q, limit, startingAfter, scanDelivery)
	if err != nil {
		return nil, false, s.wrap(fmt.Sprintf("listing webhook deliveries of %s", endpoint), err)
	}
	return ds, hasMore, nil
}
