// Package service wires the adapters into the running services, ingest and worker, from
// their configuration. The cmd mains and the devstack share it, so that the devstack runs
// exactly what production runs.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/admin"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/logredact"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/secret"
	"github.com/billing/billing/internal/store"
)

// NewLogger returns the structured logger cfg asks for, writing to stderr. It redacts
// tokens, secrets (cfg's own among them) and card numbers from every record.
func NewLogger(cfg config.Config) *slog.Logger { return newLogger(os.Stderr, cfg) }

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(logredact.New(h, cfg.Secrets()...))
}

// newBox returns the box that seals webhook secrets under BILLING_WEBHOOK_SECRET_KEY.
func newBox(cfg config.Config) (*secret.Box, error) {
	key, err := secret.ParseKey(cfg.WebhookSecretKey)
	if err != nil {
		return nil, fmt.Errorf("BILLING_WEBHOOK_SECRET_KEY: %w", err)
	}
	return secret.NewBox(key)
}

// deps are the connections both services need.
type deps struct {
	queue *queue.Conn
	store store.Store
	reg   *prometheus.Registry
	admin *admin.Handler
	// adminAddr is where the admin server listens.
	adminAddr string
}

// Addrs are the addresses a service listens on, once it does.
type Addrs struct {
	API   string
	Admin string
}

// connect starts the admin server at once (so /livez answers and /readyz says "starting"),
// then connects to NATS and the store, retrying until they answer or ctx ends. tp traces
// the queue's publishes.
func connect(ctx context.Context, cfg config.Config, name string, tp trace.TracerProvider, logger *slog.Logger, run func(func() error)) (*deps, error) {
	d := &deps{reg: prometheus.NewRegistry()}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.admin = admin.New(d.reg, map[string]admin.CheckFunc{
		"nats": func(context.Context) error {
			if d.queue == nil || !d.queue.Ready() {
				return errors.New("not connected")
			}
			return nil
		},
		"store": func(ctx context.Context) error {
			if d.store == nil {
				return errors.New("not connected")
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return d.store.Ping(ctx)
		},
	})
	adminSrv := &http.Server{Addr: cfg.AdminAddr, Handler: d.admin, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("listening on admin address: %w", err)
	}
	run(func() error { return serveUntil(ctx, adminSrv, ln, nil, 5*time.Second) })
	d.adminAddr = ln.Addr().String()
	logger.Info("admin listening", "addr", d.adminAddr)

	d.queue, err = retry(ctx, logger, "nats", func() (*queue.Conn, error) {
		qcfg := QueueConfig(cfg, name)
		qcfg.TracerProvider = tp
		return queue.Connect(ctx, qcfg, logger)
	})
	if err != nil {
		return nil, err
	}
	d.store, err = retry(ctx, logger, "the store", func() (store.Store, error) {
		return store.Open(ctx, StoreConfig(cfg), logger)
	})
	if err != nil {
		d.queue.Close()
		return nil, err
	}
	return d, nil
}

// QueueConfig is the part of cfg that locates NATS and shapes the streams, for a
// connection named name.
func QueueConfig(cfg config.Config, name string) queue.Config {
	return queue.Config{
		URL: cfg.NATSURL, CredsFile: cfg.NATSCreds, Name: name,
		Replicas: cfg.StreamReplicas, IdempotencyTTL: cfg.IdempotencyTTL, ChargesMaxBytes: cfg.ChargesMaxBytes,
	}
}

// StoreConfig is the part of cfg that chooses and locates the store.
func StoreConfig(cfg config.Config) store.Config {
	return store.Config{Engine: cfg.Store, SQLitePath: cfg.SQLitePath, MongoURI: cfg.MongoURI, MongoDatabase: cfg.MongoDatabase}
}

func (d *deps) close() {
	d.queue.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.store.Close(ctx)
}

// retry calls open until it succeeds or ctx ends, backing off up to 5 s.
func retry[T any](ctx context.Context, logger *slog.Logger, what string, open func() (T, error)) (T, error) {
	delay := 200 * time.Millisecond
	for {
		v, err := open()
		if err == nil {
			return v, nil
		}
		logger.Warn("connecting; will retry", "to", what, "error", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("connecting to %s: %w", what, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// stoppedEarly turns the error of a service that was told to stop (ctx ended) before it
// had finished starting (connecting, creating its consumers) into nil: a stop requested
// during start is a clean stop, not a failure to report or exit non-zero for.
func stoppedEarly(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
