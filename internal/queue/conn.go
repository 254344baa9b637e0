// Package queue is the JetStream adapter: the CHARGES work queue of accepted commands, the
// EVENTS stream, and the IDEMPOTENCY and REPORTS key-value buckets. It is the only package
// that imports nats.go; every error it returns is one of ours or charge's.
package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/telemetry"
)

const (
	// reconnectWait is the pause between reconnect attempts (nats.go adds jitter).
	reconnectWait = 500 * time.Millisecond
	// drainTimeout bounds Close.
	drainTimeout = 10 * time.Second
	// asyncAckTimeout fails an asynchronous publish whose ack never comes.
	asyncAckTimeout = 10 * time.Second
	// requestTimeout bounds a JetStream call made with a context that has no deadline.
	requestTimeout = 5 * time.Second
)

// Config configures Connect.
type Config struct {
	// URL is the NATS server URL, or several separated by commas. Required.
	URL string
	// CredsFile is the path of a NATS credentials file (JWT and nkey seed). Defaults to
	// none: connect without credentials.
	CredsFile string
	// Name identifies the connection in the server's monitoring. Defaults to "billing".
	Name string
	// Replicas is the replica count of every stream and bucket. Defaults to 1; production
	// uses 3 (docs/design.md, "Production topology").
	Replicas int
	// IdempotencyTTL is how long an idempotency record lives. Defaults to 24h.
	IdempotencyTTL time.Duration
	// ChargesMaxBytes bounds the CHARGES stream: while it holds that much, new commands
	// are refused (ErrNotAccepted), and nothing it holds is dropped. 0: the server's
	// limits only.
	ChargesMaxBytes int64
	// TracerProvider, when it records (telemetry.Enabled), traces the publish of each
	// command and carries trace context in the headers of every message published.
	// Defaults to none: no span, no header.
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	c.Name = cmp.Or(c.Name, "billing")
	c.Replicas = cmp.Or(c.Replicas, 1)
	c.IdempotencyTTL = cmp.Or(c.IdempotencyTTL, 24*time.Hour)
	return c
}

func (c Config) validate() error {
	switch {
	case c.URL == "":
		return errors.New("queue: URL is required")
	case c.ChargesMaxBytes < 0:
		return fmt.Errorf("queue: ChargesMaxBytes must not be negative, got %d", c.ChargesMaxBytes)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("queue: Replicas must be between 1 and 5, got %d", c.Replicas)
	case c.IdempotencyTTL < time.Second:
		return fmt.Errorf("queue: IdempotencyTTL must be at least 1s, got %s", c.IdempotencyTTL)
	}
	return nil
}

// Conn is a connection to NATS with the handles of our streams and buckets. It is safe for
// concurrent use.
type Conn struct {
	cfg    Config
	logger *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	closed chan struct{}

	// handles is set by EnsureStreams.
	handles atomic.Pointer[handles]
	// room is the last reading of the size of CHARGES (checkRoom).
	room room
	// tracer is off unless Config.TracerProvider records.
	tracer telemetry.Tracer
}

type handles struct {
	charges     jetstream.Stream
	idempotency jetstream.KeyValue
	reports     jetstream.KeyValue
}

// Connect connects to NATS, reconnecting for ever after a loss, and makes sure the streams
// and buckets exist (EnsureStreams).
//
// Publishes are not buffered while the connection is down: they fail at once with
// ErrNotAccepted instead of being sent after the caller has given up on them.
func Connect(ctx context.Context, cfg Config, logger *slog.Logger) (*Conn, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &Conn{cfg: cfg, logger: logger, closed: make(chan struct{}),
		tracer: telemetry.NewTracer(cfg.TracerProvider, "github.com/billing/billing/internal/queue")}
	var closeOnce sync.Once
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectBufSize(-1),
		nats.DrainTimeout(drainTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("nats disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			logger.Info("nats connection closed")
			closeOnce.Do(func() { close(c.closed) })
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				logger.Error("nats asynchronous error", "subject", sub.Subject, "error", err)
				return
			}
			logger.Error("nats asynchronous error", "error", err)
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		// The URL may hold a password: it stays out of the error.
		return nil, unavailable("connecting to nats", err)
	}
	c.nc = nc
	logger.Info("nats connected", "server", nc.ConnectedUrlRedacted())

	c.js, err = jetstream.New(nc,
		jetstream.WithDefaultTimeout(requestTimeout),
		jetstream.WithPublishAsyncTimeout(asyncAckTimeout),
	)
	if err != nil {
		nc.Close()
		return nil, unavailable("opening jetstream", err)
	}
	if err := c.EnsureStreams(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// Close drains the connection: subscriptions stop, what is in flight is flushed, then it
// closes. It returns when the connection is closed, after at most about drainTimeout.
func (c *Conn) Close() {
	if err := c.nc.Drain(); err != nil {
		// Closed already, or reconnecting (Drain then closes at once).
		c.nc.Close()
	}
	select {
	case <-c.closed:
	case <-time.After(drainTimeout + time.Second):
		c.nc.Close()
	}
}

// Ready reports whether the connection is up, for readiness probes.
func (c *Conn) Ready() bool {
	return c.nc.Status() == nats.CONNECTED
}

// withTimeout gives ctx a deadline of requestTimeout unless it has one.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// streams returns the stream and bucket handles, which Connect always sets.
func (c *Conn) streams() *handles {
	return c.handles.Load()
}
