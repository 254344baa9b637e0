package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
	"github.com/billing/billing/internal/processor"
)

const (
	// scopeChargesWrite is the scope POST /v1/charges requires, as ours does.
	scopeChargesWrite = "charges:write"
	// maxBodyBytes is the largest request body accepted, as ours.
	maxBodyBytes = 64 << 10
	// requestConns is the default share of the pool for requests: one ingest transaction
	// each, and more of them at once only queue in PostgreSQL on two cores.
	requestConns = 32
	// riverConns is the default share of the pool for River's own work besides the
	// workers: its notifier's LISTEN, the leader's maintenance, fetches, completions.
	riverConns = 4
)

// peer is the front end and its River client on one connection pool.
type peer struct {
	pool     *pgxpool.Pool
	river    *river.Client[pgx.Tx]
	verifier *auth.Verifier
	logger   *slog.Logger
	workers  int
	// accepted counts the jobs this process inserted (replays excluded).
	accepted atomic.Int64
}

// newPeer connects to PostgreSQL (which must be migrated) and builds the River client:
// with cfg.workers workers on the default queue, or insert-only when it is 0.
func newPeer(ctx context.Context, cfg config, logger *slog.Logger) (*peer, error) {
	verifier, err := auth.NewVerifier(ctx, auth.Config{Issuer: cfg.issuer, Audience: cfg.audience, JWKSFile: cfg.jwks}, logger)
	if err != nil {
		return nil, err
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing -dsn: %w", err)
	}
	poolCfg.MaxConns = int32(cfg.maxConns)
	if cfg.maxConns == 0 {
		poolCfg.MaxConns = int32(requestConns + cfg.workers + riverConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}

	riverCfg := &river.Config{Logger: logger.With("component", "river")}
	if cfg.workers > 0 {
		workers := river.NewWorkers()
		river.AddWorker(workers, &ChargeWorker{pool: pool, processor: processor.Simulated{}, now: time.Now})
		riverCfg.Workers = workers
		riverCfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.workers}}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), riverCfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &peer{pool: pool, river: client, verifier: verifier, logger: logger, workers: cfg.workers}, nil
}

// start starts working jobs, unless the client is insert-only.
func (p *peer) start(ctx context.Context) error {
	if p.workers == 0 {
		return nil
	}
	// Not ctx: cancelling the start context would stop River at once, before the HTTP
	// server has drained; stop does it in order.
	if err := p.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("starting river: %w", err)
	}
	return nil
}

// stop stops River, letting the running jobs finish (cancelling them once ctx ends), and
// closes the pool.
func (p *peer) stop(ctx context.Context) error {
	var err error
	if p.workers > 0 {
		if err = p.river.Stop(ctx); err != nil {
			cancelCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			err = errors.Join(fmt.Errorf("stopping river: %w", err), p.river.StopAndCancel(cancelCtx))
		}
	}
	p.close()
	return err
}

// close closes the pool.
func (p *peer) close() { p.pool.Close() }

// handler is the HTTP API: POST /v1/charges (bearer token with charges:write) and GET
// /stats (no authentication, for the bench).
func (p *peer) handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(gin.Recovery())
	e.POST("/v1/charges", p.authenticate, p.createCharge)
	e.GET("/stats", p.stats)
	return e
}

// problem is an RFC 9457 problem details body with the API's code and param, as ours.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Param  string `json:"param,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func abortProblem(c *gin.Context, status int, code, param, detail string) {
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(status, problem{
		Type: "about:blank", Title: http.StatusText(status), Status: status,
		Code: code, Param: param, Detail: detail,
	})
}

const principalKey = "principal"

// authenticate requires a valid bearer token with the charges:write scope.
func (p *peer) authenticate(c *gin.Context) {
	scheme, token, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
		abortProblem(c, http.StatusUnauthorized, charge.CodeUnauthenticated, "", "A bearer token is required.")
		return
	}
	pr, err := p.verifier.Verify(strings.TrimSpace(token))
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
		abortProblem(c, http.StatusUnauthorized, charge.CodeUnauthenticated, "", "The bearer token is invalid or expired.")
		return
	}
	if !pr.HasScope(scopeChargesWrite) {
		c.Header("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+scopeChargesWrite+`"`)
		abortProblem(c, http.StatusForbidden, charge.CodeInsufficientScope, "", "This token lacks the "+scopeChargesWrite+" scope.")
		return
	}
	c.Set(principalKey, pr)
	c.Next()
}

// errKeyReused is a known idempotency key sent with another request body.
var errKeyReused = errors.New("idempotency key reused with another request")

// createCharge is POST /v1/charges: validate, then the idempotency row and the job in
// one transaction, then 202 with the pending charge.
func (p *peer) createCharge(c *gin.Context) {
	key, present := c.Request.Header["Idempotency-Key"]
	switch {
	case !present || len(key) == 0 || key[0] == "":
		abortProblem(c, http.StatusBadRequest, charge.CodeIdempotencyMissing, "Idempotency-Key", "POST requests require an Idempotency-Key header.")
		return
	case len(key) > 1 || !ingest.ValidKey(key[0]):
		abortProblem(c, http.StatusBadRequest, charge.CodeIdempotencyInvalid, "Idempotency-Key", "Idempotency-Key must be 1 to 255 printable ASCII characters.")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		abortProblem(c, http.StatusRequestEntityTooLarge, charge.CodeBodyTooLarge, "", "The request body must be at most 64 KiB.")
		return
	case err != nil:
		abortProblem(c, http.StatusBadRequest, charge.CodeInvalidJSON, "", "The request body could not be read.")
		return
	}
	params, err := decodeParams(body)
	if err != nil {
		abortProblem(c, http.StatusBadRequest, charge.CodeInvalidJSON, "", "The request body is not a valid charge: "+err.Error())
		return
	}
	if invalid := params.Validate(); invalid != nil {
		abortProblem(c, http.StatusBadRequest, invalid.Code, invalid.Param, invalid.Detail)
		return
	}

	merchant := c.MustGet(principalKey).(auth.Principal).Merchant
	ch := params.Charge(charge.NewID(charge.PrefixCharge), merchant, time.Now)
	resp, err := json.Marshal(ch.Public())
	if err != nil {
		abortProblem(c, http.StatusInternalServerError, "internal_error", "", "The charge could not be encoded.")
		return
	}
	hash := sha256.Sum256(body)
	resp, replayed, err := p.accept(c.Request.Context(), merchant, key[0], hash[:], resp, ChargeArgs{Merchant: merchant, Charge: ch})
	switch {
	case errors.Is(err, errKeyReused):
		abortProblem(c, http.StatusUnprocessableEntity, charge.CodeIdempotencyReused, "",
			"Keys for idempotent requests can only be used with the same parameters they were first used with.")
		return
	case err != nil:
		p.logger.WarnContext(c.Request.Context(), "request not accepted", "error", err)
		c.Header("Retry-After", "1")
		abortProblem(c, http.StatusServiceUnavailable, charge.CodeUnavailable, "",
			"The service cannot take the request right now; nothing was accepted. Retry later.")
		return
	}
	id := ch.ID
	if replayed {
		c.Header("Idempotent-Replayed", "true")
		var stored struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(resp, &stored)
		id = stored.ID
	}
	c.Header("Location", "/v1/charges/"+id)
	c.Data(http.StatusAccepted, "application/json", resp)
}

// decodeParams decodes body strictly: one JSON object, no unknown field, nothing after
// it. An empty body is the empty object.
func decodeParams(body []byte) (charge.CreateParams, error) {
	var params charge.CreateParams
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&params); err != nil {
		return charge.CreateParams{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return charge.CreateParams{}, errors.New("data after the JSON object")
	}
	return params, nil
}

// accept claims merchant's key for a request whose body hashes to hash and, if the key is
// new, inserts the job, in one transaction: River's transactional enqueue. It returns the
// response to send: resp for a new key, the stored one (replayed) for a key already
// claimed by the same request; errKeyReused for a key claimed by another.
//
// A concurrent claim of the same key makes the insert wait for the other transaction; if
// that one commits, the insert does nothing and the stored row is read (a new snapshot,
// under READ COMMITTED), and if it rolls back, the insert goes ahead.
func (p *peer) accept(ctx context.Context, merchant, key string, hash, resp []byte, args ChargeArgs) ([]byte, bool, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (merchant, key, request_hash, response) VALUES ($1, $2, $3, $4)
		ON CONFLICT (merchant, key) DO NOTHING`, merchant, key, hash, resp)
	if err != nil {
		return nil, false, fmt.Errorf("claiming the idempotency key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		var storedHash, stored []byte
		if err := tx.QueryRow(ctx, `SELECT request_hash, response FROM idempotency_keys WHERE merchant = $1 AND key = $2`,
			merchant, key).Scan(&storedHash, &stored); err != nil {
			return nil, false, fmt.Errorf("reading the idempotency key: %w", err)
		}
		if !bytes.Equal(storedHash, hash) {
			return nil, false, errKeyReused
		}
		return stored, true, nil
	}
	if _, err := p.river.InsertTx(ctx, tx, args, nil); err != nil {
		return nil, false, fmt.Errorf("inserting the job: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, fmt.Errorf("committing: %w", err)
	}
	p.accepted.Add(1)
	return resp, false, nil
}

// stats is GET /stats: the jobs this process inserted and the charges stored, which the
// bench polls to know when its charges have settled.
func (p *peer) stats(c *gin.Context) {
	var settled int64
	if err := p.pool.QueryRow(c.Request.Context(), `SELECT count(*) FROM charges`).Scan(&settled); err != nil {
		abortProblem(c, http.StatusServiceUnavailable, charge.CodeUnavailable, "", err.Error())
		return
	}
	c.JSON(http.StatusOK, gin.H{"accepted": p.accepted.Load(), "settled": settled})
}
