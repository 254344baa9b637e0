// Command devstack runs the whole billing system on one machine with nothing installed:
// an embedded NATS server with JetStream and an embedded MongoDB-compatible store
// (FerretDB on SQLite), both under BILLING_DATA_DIR, plus the ingest API and a worker.
//
//	devstack [up]      everything; prints the API URL and a ready token
//	devstack infra     only NATS and the store, for separately started ingest and workers
//	devstack token     a token the devstack's API accepts
//	devstack listen    forward webhook deliveries to a local URL
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/devstack"
	"github.com/billing/billing/internal/service"
)

const usage = `usage: devstack [up | infra | token [--merchant M] [--scopes "a b"] [--ttl 24h]
                | listen --forward-to URL [--api URL] [--merchant M] [--events "a b"]]

  up      run NATS, the store, the ingest API and a worker (the default)
  infra   run only NATS (BILLING_DEV_NATS_ADDR) and the store (BILLING_DEV_MONGO_ADDR)
  token   print a token the devstack's API accepts
  listen  register a temporary webhook endpoint and forward its deliveries to --forward-to
`

func main() {
	args := os.Args[1:]
	cmd := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "up":
		err = up(args)
	case "infra":
		err = infra(args)
	case "token":
		err = token(args)
	case "listen":
		err = listen(args)
	case "help":
		fmt.Print(usage)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstack %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func infra(args []string) error {
	fs := flag.NewFlagSet("infra", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(config.Devstack, *configPath, os.Environ())
	if err != nil {
		return err
	}
	logger := service.NewLogger(cfg)
	ctx, stop := signalContext()
	defer stop()
	stack, err := devstack.StartInfra(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stack.Close()
	fmt.Printf("NATS:    %s\nMongoDB: %s\nJWKS:    %s\ndata:    %s\n\n"+
		"Services started separately need:\n  export BILLING_NATS_URL=%s BILLING_MONGO_URI=%s\n"+
		"  export BILLING_AUTH_JWKS_FILE=%s\n  export BILLING_WEBHOOK_SECRET_KEY=$(cat %s)\n",
		stack.NATSURL, stack.MongoURI, stack.Key.JWKSPath(), cfg.DataDir,
		stack.NATSURL, stack.MongoURI, stack.Key.JWKSPath(),
		filepath.Join(cfg.DataDir, devstack.KeyDir, devstack.WebhookKeyFile))
	<-ctx.Done()
	return nil
}

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(config.Devstack, *configPath, os.Environ())
	if err != nil {
		return err
	}
	logger := service.NewLogger(cfg)
	ctx, stop := signalContext()
	defer stop()
	stack, err := devstack.StartInfra(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stack.Close()

	// The services see the devstack's servers and key, then every BILLING_* variable.
	environ := append([]string{
		"BILLING_AUTH_JWKS_FILE=" + stack.Key.JWKSPath(),
		"BILLING_WEBHOOK_SECRET_KEY=" + stack.WebhookSecretKey,
		"BILLING_WEBHOOK_ALLOW_PRIVATE=true",
	}, os.Environ()...)
	environ = append(environ, "BILLING_NATS_URL="+stack.NATSURL, "BILLING_MONGO_URI="+stack.MongoURI)
	ingestCfg, err := config.Load(config.Ingest, *configPath, environ)
	if err != nil {
		return err
	}
	workerCfg, err := config.Load(config.Worker, *configPath, environ)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	ready := make(chan service.Addrs, 1)
	g.Go(func() error {
		return service.RunIngest(gctx, ingestCfg, logger.With("service", "ingest"), func(a service.Addrs) { ready <- a })
	})
	g.Go(func() error { return service.RunWorker(gctx, workerCfg, logger.With("service", "worker")) })
	select {
	case addrs := <-ready:
		addr := addrs.API
		tok, err := stack.Key.Sign(cfg.AuthIssuer, cfg.AuthAudience, devstack.DefaultMerchant, devstack.AllScopes, 24*time.Hour, time.Now())
		if err != nil {
			return err
		}
		scheme := "http"
		if ingestCfg.TLSCertFile != "" {
			scheme = "https"
		}
		fmt.Printf("\nbilling devstack is up\n\n  API:    %s://%s\n  token:  %s\n\n  export BILLING_API=%s://%s\n  export TOKEN=%s\n\n",
			scheme, localAddr(addr), tok, scheme, localAddr(addr), tok)
	case <-gctx.Done():
	}
	return g.Wait()
}

// localAddr turns a listener address such as [::]:8080 into one a user can paste.
func localAddr(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		host := addr[:i]
		if host == "" || host == "[::]" || host == "0.0.0.0" {
			return "localhost" + addr[i:]
		}
	}
	return addr
}

func token(args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	merchant := fs.String("merchant", devstack.DefaultMerchant, "the merchant (sub claim)")
	scopes := fs.String("scopes", strings.Join(devstack.AllScopes, " "), "space-separated scopes")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime of the token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(config.Devstack, *configPath, os.Environ())
	if err != nil {
		return err
	}
	key, err := auth.LoadOrCreateDevKey(filepath.Join(cfg.DataDir, devstack.KeyDir))
	if err != nil {
		return err
	}
	tok, err := key.Sign(cfg.AuthIssuer, cfg.AuthAudience, *merchant, strings.Fields(*scopes), *ttl, time.Now())
	if err != nil {
		return errors.Join(errors.New("signing token"), err)
	}
	fmt.Println(tok)
	return nil
}

func listen(args []string) error {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	forwardTo := fs.String("forward-to", "", "http(s) URL deliveries are forwarded to (required)")
	apiDefault := os.Getenv("BILLING_API")
	if apiDefault == "" {
		apiDefault = "http://localhost:8080"
	}
	api := fs.String("api", apiDefault, "base URL of the billing API (default $BILLING_API)")
	merchant := fs.String("merchant", devstack.DefaultMerchant, "the merchant whose events are forwarded")
	events := fs.String("events", "*", "space-separated event types")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *forwardTo == "" {
		return errors.New("--forward-to is required")
	}
	cfg, err := config.Load(config.Devstack, *configPath, os.Environ())
	if err != nil {
		return err
	}
	key, err := auth.LoadOrCreateDevKey(filepath.Join(cfg.DataDir, devstack.KeyDir))
	if err != nil {
		return err
	}
	tok, err := key.Sign(cfg.AuthIssuer, cfg.AuthAudience, *merchant, []string{"webhooks:manage"}, time.Hour, time.Now())
	if err != nil {
		return errors.Join(errors.New("signing token"), err)
	}
	ctx, stop := signalContext()
	defer stop()
	l := &devstack.Listener{
		APIURL:     *api,
		Token:      tok,
		ForwardTo:  *forwardTo,
		Events:     strings.Fields(*events),
		HTTPClient: &http.Client{},
	}
	return l.Run(ctx, os.Stdout)
}
