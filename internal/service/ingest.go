package service

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/billing/billing/internal/api"
	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/certfile"
	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/dashboard"
	"github.com/billing/billing/internal/ingest"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/webhook"
)

// takeoverAfter is how long an idempotency claim may stay "started" before a repeat of
// the same request finishes it: twice the longest publish (5 s with its retries, whatever
// the request's deadline). A client's retry comes after the first attempt has answered,
// so it is kept waiting (409) for the rest of this only when the first publish ended
// with its outcome unknown; the takeover publishes the same command again, which the
// stream stores once.
const takeoverAfter = 10 * time.Second

// RunIngest runs the ingest API until ctx ends, then drains: /readyz turns 503, the
// listener stops taking requests and in-flight ones finish within the shutdown timeout.
// ready, if not nil, receives the addresses once the API listens.
func RunIngest(ctx context.Context, cfg config.Config, logger *slog.Logger, ready func(Addrs), opts ...Option) error {
	return stoppedEarly(ctx, runIngest(ctx, cfg, logger, ready, opts))
}

func runIngest(ctx context.Context, cfg config.Config, logger *slog.Logger, ready func(Addrs), opts []Option) error {
	tp, flush, err := startTracing(ctx, cfg, "billing-ingest", logger, opts)
	if err != nil {
		return err
	}
	defer flush()
	g, gctx := errgroup.WithContext(ctx)
	d, err := connect(gctx, cfg, "billing-ingest", tp, logger, func(f func() error) { g.Go(f) })
	if err != nil {
		return errors.Join(err, g.Wait())
	}
	defer d.close()

	verifier, err := auth.NewVerifier(gctx, auth.Config{
		Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience,
		JWKSFile: cfg.AuthJWKSFile, JWKSURL: cfg.AuthJWKSURL, HS256Secret: []byte(cfg.AuthHS256Secret),
	}, logger)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	box, err := newBox(cfg)
	if err != nil {
		return err
	}
	webhooks := &webhook.Endpoints{
		Store: d.store, Sealer: box, Guard: &webhook.Guard{AllowPrivate: cfg.WebhookAllowPrivate},
		Tasks: d.queue, NowFunc: time.Now, Retention: cfg.EventRetention,
	}
	idem := &ingest.Idempotency{
		KV: d.queue.Idempotency(), Sealer: box, Logger: logger, NowFunc: time.Now, TakeoverAfter: takeoverAfter,
		Executor: ingest.Actions{
			ingest.KindCommand:      ingest.PublishAction(publisher{d.queue}),
			ingest.KindOperation:    ingest.OperationAction(publisher{d.queue}, d.store, logger),
			webhook.ActionCreate:    ingest.PayloadAction(webhooks.ExecuteCreate),
			webhook.ActionRotate:    ingest.PayloadAction(webhooks.ExecuteRotate),
			webhook.ActionRedeliver: ingest.PayloadAction(webhooks.ExecuteRedeliver),
		},
	}
	// draining ends the long polls in flight once the server begins to shut down: they are
	// answered at once rather than outlast the grace and be cut off.
	draining := make(chan struct{})
	charges := &ingest.Charges{
		Idempotency: idem, Store: d.store, Commands: d.queue, Waiter: d.queue, NowFunc: time.Now, Draining: draining,
		EncodeFunc: func(c charge.Charge) ([]byte, error) { return json.Marshal(c) },
	}
	refunds := &ingest.Refunds{
		Idempotency: idem, Charges: charges, Store: d.store, Commands: d.queue, NowFunc: time.Now,
		EncodeFunc: func(r charge.Refund) ([]byte, error) { return json.Marshal(r) },
	}
	// A charge or refund is readable from its 202 on: what a repeat of its request looks
	// for, so that its claim is the one write to the bucket.
	idem.Witnesses = map[string]ingest.Witness{ingest.KindCommand: ingest.CommandWitness(charges, refunds)}
	srv := api.New(api.Config{RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst}, api.Deps{
		Logger: logger, Verifier: verifier, Charges: charges, Refunds: refunds,
		Balances: &ingest.Balances{Store: d.store}, Webhooks: webhooks, Idempotency: idem,
		Registerer: d.reg, NowFunc: time.Now, TracerProvider: tp,
	})
	o := applyOptions(opts)
	ops := &operations{queue: d.queue, store: d.store, logger: logger, sampleEvery: o.settleSampleEvery}
	dash, err := dashboard.New(dashboard.Deps{
		Logger: logger, Verifier: verifier, Charges: charges, Refunds: refunds,
		Balances: &ingest.Balances{Store: d.store}, Webhooks: webhooks, Idempotency: idem,
		Transitions: d.store, Operations: ops,
		Secure: cfg.TLSCertFile != "", NowFunc: time.Now,
	})
	if err != nil {
		return err
	}
	for _, l := range o.signInLinks {
		dash.AllowSignInLink(l.code, l.token, l.until)
	}

	var tlsCfg *tls.Config
	if cfg.TLSCertFile != "" {
		// Reloaded when the files change: a renewed certificate is served without a restart.
		pair, err := certfile.Load(cfg.TLSCertFile, cfg.TLSKeyFile, time.Now, logger)
		if err != nil {
			return fmt.Errorf("BILLING_TLS_CERT_FILE: %w", err)
		}
		tlsCfg = apiTLSConfig(pair.GetCertificate)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listening on BILLING_HTTP_ADDR: %w", err)
	}
	httpSrv := &http.Server{
		Handler:           withDashboard(dash, srv.Handler()),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      api.MaxWait + 15*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	httpSrv.RegisterOnShutdown(func() { close(draining) })
	g.Go(func() error {
		<-gctx.Done()
		d.admin.MarkDraining()
		return nil
	})
	g.Go(func() error { return serveUntil(gctx, httpSrv, ln, tlsCfg, cfg.ShutdownTimeout) })
	g.Go(func() error { ops.sample(gctx); return nil })
	d.admin.MarkReady()
	logger.Info("ingest API listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil)
	if ready != nil {
		ready(Addrs{API: ln.Addr().String(), Admin: d.adminAddr})
	}
	return g.Wait()
}

// withDashboard serves /dashboard with dash and everything else with api, untouched
// (no ServeMux in front of the API: it would clean and redirect paths the API answers).
func withDashboard(dash *dashboard.Dashboard, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dashboard.Owns(r.URL.Path) {
			dash.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// apiCipherSuites are the TLS 1.2 cipher suites the API accepts: those of Mozilla's
// "intermediate" configuration that Go implements, ECDHE key exchange with an AEAD cipher
// only. CBC suites (ECDHE-RSA-AES128-SHA and the like, which Go would otherwise offer),
// RSA key exchange and 3DES are refused. TLS 1.3 suites are not configurable in Go: all
// three are AEAD, and Go's defaults are used.
var apiCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// apiTLSConfig is the API's TLS configuration (Mozilla "intermediate"): TLS 1.2 with
// apiCipherSuites, or TLS 1.3; the certificate from getCert.
func apiTLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   slices.Clone(apiCipherSuites),
		GetCertificate: getCert,
	}
}

// publisher adapts the queue's publish errors to the ingest's: a publish whose outcome is
// unknown must keep its idempotency claim.
type publisher struct{ q *queue.Conn }

func (p publisher) PublishCommand(ctx context.Context, cmd charge.Command, data []byte) error {
	return outcome(p.q.PublishEncodedCommand(ctx, cmd, data))
}

func (p publisher) PublishOperation(ctx context.Context, cmd charge.Command) (uint64, error) {
	seq, err := p.q.PublishOperation(ctx, cmd)
	return seq, outcome(err)
}

func (p publisher) WithdrawCommand(ctx context.Context, seq uint64) error {
	return p.q.WithdrawCommand(ctx, seq)
}

// outcome marks a publish error after which the command may be stored.
func outcome(err error) error {
	if err != nil && queue.PublishOutcomeUnknown(err) {
		return fmt.Errorf("%w: %w", ingest.ErrOutcomeUnknown, err)
	}
	return err
}
