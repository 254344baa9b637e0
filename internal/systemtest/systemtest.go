// Package systemtest runs the ingest and the worker in the test's own process, against
// real NATS and a real store, for the tests that need the whole system but not separate
// processes (e2e/ runs the binaries).
package systemtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/secret"
	"github.com/billing/billing/internal/service"
	"github.com/billing/billing/internal/store"
)

// startTimeout bounds how long Start waits for the ingest to listen.
const startTimeout = 60 * time.Second

// Running is an ingest and a worker running in this process.
type Running struct {
	// Addrs are the ingest's listeners.
	Addrs service.Addrs

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errs    chan error
	once    sync.Once
	stopped error
}

// Start runs service.RunIngest and service.RunWorker with cfg (its listen addresses are
// best "127.0.0.1:0") and returns once the ingest listens. It fails if either ends
// first, or if the ingest does not listen within a minute; either way nothing is left
// running.
func Start(cfg config.Config, logger *slog.Logger, opts ...service.Option) (*Running, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, errs: make(chan error, 2)}
	ready := make(chan service.Addrs, 1)
	r.wg.Go(func() { r.errs <- service.RunIngest(ctx, cfg, logger, func(a service.Addrs) { ready <- a }, opts...) })
	r.wg.Go(func() { r.errs <- service.RunWorker(ctx, cfg, logger, opts...) })
	select {
	case r.Addrs = <-ready:
		return r, nil
	case err := <-r.errs:
		r.errs <- err // Stop reports it too
		return nil, errors.Join(fmt.Errorf("the system did not start: %w", err), r.Stop())
	case <-time.After(startTimeout):
		return nil, errors.Join(fmt.Errorf("the ingest did not listen in %s", startTimeout), r.Stop())
	}
}

// Stop stops both, waits for them to drain, and returns what they ended with: nil for a
// clean stop. Every call returns the same.
func (r *Running) Stop() error {
	r.once.Do(func() {
		r.cancel()
		r.wg.Wait()
		close(r.errs)
		var errs []error
		for err := range r.errs {
			errs = append(errs, err)
		}
		r.stopped = errors.Join(errs...)
	})
	return r.stopped
}

// Config is the configuration tests start from: the ingest's (the worker reads the same)
// on NATS at natsURL and the store st, listening on free loopback ports, tokens checked
// against the keys of jwksFile, a fresh webhook secret key, and processor retries a few
// milliseconds apart.
func Config(natsURL string, st store.Config, jwksFile string) config.Config {
	cfg := config.Defaults(config.Ingest)
	cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.NATSURL = natsURL
	cfg.Store, cfg.SQLitePath, cfg.MongoURI, cfg.MongoDatabase = st.Engine, st.SQLitePath, st.MongoURI, st.MongoDatabase
	cfg.AuthJWKSFile = jwksFile
	cfg.WebhookSecretKey = secret.NewKey()
	cfg.WorkerRetrySchedule = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}
