// Command peer is the front end that the bench compares ours with: the same POST
// /v1/charges, built as a Go team would otherwise build it by following River's
// documentation. River (github.com/riverqueue/river) on PostgreSQL holds the jobs; the
// handler writes the idempotency row and inserts the job in one transaction before it
// answers 202 (River's transactional enqueue), and River workers settle each charge with
// the repository's simulated processor, writing the charge, its event and its ledger
// entries and completing the job in one transaction (River's JobCompleteTx).
//
// It reuses what is not under comparison: the token verifier (internal/auth), the
// validation of the body and the construction of the charge (internal/charge), the key
// rules (internal/ingest) and the processor (internal/processor).
//
//	peer -migrate -dsn DSN
//	peer -addr 127.0.0.1:8080 -dsn DSN -jwks jwks.json [-issuer billing-dev] [-audience billing-api] [-workers 100] [-max-conns 0]
//
// -migrate creates the schema (River's migrations, then the peer's tables) and exits.
// Otherwise it serves POST /v1/charges and GET /stats ({"accepted": jobs this process
// inserted, "settled": charges stored}) on -addr until SIGTERM or SIGINT, working jobs
// with -workers River workers (0: an insert-only client that works none). The bench
// builds it and runs it as a process of its own (bench/postgres.go starts the server).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	addr     string
	dsn      string
	jwks     string
	issuer   string
	audience string
	workers  int
	maxConns int
	migrate  bool
}

// shutdownTimeout bounds each step of a graceful stop: the HTTP server's, River's.
const shutdownTimeout = 30 * time.Second

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "HTTP listen address, host:port")
	flag.StringVar(&cfg.dsn, "dsn", "", "PostgreSQL connection string (required)")
	flag.StringVar(&cfg.jwks, "jwks", "", "JWKS file holding the EdDSA public key of the tokens (required unless -migrate)")
	flag.StringVar(&cfg.issuer, "issuer", "billing-dev", "required iss claim of the tokens")
	flag.StringVar(&cfg.audience, "audience", "billing-api", "required aud claim of the tokens")
	flag.IntVar(&cfg.workers, "workers", 100, "MaxWorkers of River's default queue; 0: insert-only, no job is worked")
	flag.IntVar(&cfg.maxConns, "max-conns", 0, "PostgreSQL connections in the pool (0: 32 for requests + workers + 4 for River)")
	flag.BoolVar(&cfg.migrate, "migrate", false, "create the schema (River's migrations and the peer's tables), then exit")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(cfg, logger); err != nil {
		logger.Error("peer failed", "error", err)
		os.Exit(1)
	}
}

func run(cfg config, logger *slog.Logger) error {
	switch {
	case cfg.dsn == "":
		return errors.New("-dsn is required")
	case cfg.workers < 0:
		return errors.New("-workers must not be negative")
	case cfg.maxConns < 0:
		return errors.New("-max-conns must not be negative")
	case !cfg.migrate && cfg.jwks == "":
		return errors.New("-jwks is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if cfg.migrate {
		versions, err := migrateDSN(ctx, cfg.dsn)
		if err != nil {
			return err
		}
		logger.Info("schema up to date", "river_migrations_applied", versions)
		return nil
	}

	p, err := newPeer(ctx, cfg, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		p.close()
		return err
	}
	if err := p.start(ctx); err != nil {
		ln.Close()
		p.close()
		return err
	}
	srv := &http.Server{Handler: p.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("peer serving", "addr", ln.Addr().String(), "workers", cfg.workers)

	select {
	case <-ctx.Done():
		err = nil
	case err = <-served:
		err = fmt.Errorf("serving HTTP: %w", err)
	}
	logger.Info("peer stopping")
	// Requests first, so that nothing is accepted once the workers are gone; then River,
	// which lets running jobs finish.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = errors.Join(err, ignoreClosed(srv.Shutdown(shutdownCtx)))
	stopCtx, cancelStop := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancelStop()
	err = errors.Join(err, p.stop(stopCtx))
	logger.Info("peer stopped", "accepted", p.accepted.Load())
	return err
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
