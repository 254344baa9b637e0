// Command devstack runs the whole billing system on one machine with nothing installed:
// an embedded NATS server with JetStream and an embedded MongoDB-compatible store
// (FerretDB on SQLite), both under BILLING_DATA_DIR, plus the ingest API and a worker.
//
//	devstack [up]      everything; prints the API URL and a ready token
//	devstack infra     only NATS and the store, for separately started ingest and workers
//	devstack cluster   the production shape: three NATS servers (sync_interval: always),
//	                   each a process of its own, and the store
//	devstack nats      one server of that cluster
//	devstack token     a token the devstack's API accepts
//	devstack listen    forward webhook deliveries to a local URL
//	devstack trigger   make the running API emit an event
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/devstack"
	"github.com/billing/billing/internal/service"
	"github.com/billing/billing/internal/store"
)

const usage = `usage: devstack [up | infra | cluster | nats | token [--merchant M] [--scopes "a b"] [--ttl 24h]
                | listen --forward-to URL [--api URL] [--merchant M] [--events "a b"]
                | trigger EVENT [--api URL] [--merchant M]]

  up      run NATS, the store, the ingest API and a worker (the default)
  infra [--no-nats]
          run only NATS (BILLING_DEV_NATS_ADDR) and the store: its database file
          (BILLING_SQLITE_PATH) or, with BILLING_STORE=mongodb, FerretDB (BILLING_DEV_MONGO_ADDR);
          --no-nats: the store alone, the services using BILLING_NATS_URL
  cluster [--nodes 3] [--client-port 4231] [--cluster-port 6231]
          run the store and a NATS cluster as production runs it: three servers, each a
          process of its own ("devstack nats", killable and restartable alone), with
          JetStream fsyncing every write (sync_interval: always); the services take all
          three URLs and BILLING_STREAM_REPLICAS=3
  nats --name N --listen ADDR [--cluster ADDR --routes ADDR,ADDR]
          run one server of that cluster, its data in BILLING_DATA_DIR/N; without
          --cluster and --routes, a server alone, fsyncing every write as well
  token   print a token the devstack's API accepts
  listen  register a temporary webhook endpoint and forward its deliveries to --forward-to
  trigger make a charge through the API (and capture, cancel or refund it) that emits EVENT:
          charge.succeeded, charge.failed, charge.authorized, charge.captured,
          charge.canceled, charge.refunded or refund.failed
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
		limitMemory()
		err = up(args)
	case "infra":
		limitMemory()
		err = infra(args)
	case "cluster":
		err = cluster(args)
	case "nats":
		limitMemory()
		err = natsNode(args)
	case "token":
		err = token(args)
	case "listen":
		err = listen(args)
	case "trigger":
		ctx, stop := signalContext()
		err = runTrigger(ctx, args, os.Environ(), os.Stdout)
		stop()
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

// memoryLimit is the soft memory limit of devstack up and infra when GOMEMLIMIT is not
// set. Their heap is mostly the embedded NATS server's, which under load makes garbage as
// fast as it caches messages: left to GOGC alone the heap doubles before each collection.
const memoryLimit = 256 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func infra(args []string) error {
	fs := flag.NewFlagSet("infra", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	noNATS := fs.Bool("no-nats", false, "run no NATS server: the services use BILLING_NATS_URL's (a cluster of \"devstack nats\")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(config.Devstack, *configPath, os.Environ())
	if err != nil {
		return err
	}
	logger := service.NewLogger(cfg)
	service.LogStart(logger, "devstack infra", cfg)
	ctx, stop := signalContext()
	defer stop()
	start := devstack.StartInfra
	if *noNATS {
		start = func(ctx context.Context, cfg config.Config, logger *slog.Logger) (*devstack.Infra, error) {
			return devstack.StartInfraBeside(ctx, cfg, logger, cfg.NATSURL)
		}
	}
	stack, err := start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stack.Close()
	fmt.Printf("NATS:    %s\nstore:   %s\nJWKS:    %s\ndata:    %s\n\n"+
		"Services started separately need:\n  export BILLING_NATS_URL=%s %s\n"+
		"  export BILLING_AUTH_JWKS_FILE=%s\n  export BILLING_WEBHOOK_SECRET_KEY=$(cat %s)\n",
		stack.NATSURL, strings.Join(stack.Env(), " "), stack.Key.JWKSPath(), cfg.DataDir,
		stack.NATSURL, strings.Join(stack.Env(), " "), stack.Key.JWKSPath(),
		filepath.Join(cfg.DataDir, devstack.KeyDir, devstack.WebhookKeyFile))
	<-ctx.Done()
	return nil
}

func up(args []string) error {
	service.TuneGC() // the services run in this process
	ctx, stop := signalContext()
	defer stop()
	return runUp(ctx, args, os.Environ(), os.Stdout)
}

// The admin addresses of the services `devstack up` runs: one each (both taking
// BILLING_ADMIN_ADDR, the second could not bind it), on loopback (a devstack serves
// /metrics to no one else). The services' own defaults, :9090 and :9091 on every
// interface, are those deploy/ relies on and stay.
const (
	upIngestAdmin = "127.0.0.1:9090"
	upWorkerAdmin = "127.0.0.1:9091"
	// workerAdminVar sets the worker's admin address under `devstack up`;
	// BILLING_ADMIN_ADDR, if set, is the ingest's only.
	workerAdminVar = "BILLING_DEV_WORKER_ADMIN_ADDR"
)

// upSetup is what `devstack up` gives its services on top of the user's configuration.
type upSetup struct {
	ingestAdmin, workerAdmin string
	// notes are said at start, with the API's URL and token.
	notes []string
}

// planUp decides the services' admin addresses from the environment and cfg (the
// devstack's configuration: the config file and the environment).
func planUp(environ []string, cfg config.Config) (upSetup, error) {
	vars := envMap(environ)
	s := upSetup{ingestAdmin: upIngestAdmin, workerAdmin: upWorkerAdmin}
	if v := vars["BILLING_ADMIN_ADDR"]; v != "" {
		s.ingestAdmin = v
	} else if cfg.AdminAddr != config.Defaults(config.Devstack).AdminAddr {
		s.ingestAdmin = cfg.AdminAddr // admin_addr of the config file
	}
	if v := vars[workerAdminVar]; v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return s, fmt.Errorf("%s: must be host:port, got %q", workerAdminVar, v)
		}
		s.workerAdmin = v
	}
	if s.ingestAdmin != upIngestAdmin {
		s.notes = append(s.notes, fmt.Sprintf("BILLING_ADMIN_ADDR (%s) is the ingest's admin address only; the worker's is %s (%s)",
			s.ingestAdmin, s.workerAdmin, workerAdminVar))
	}
	if sameListener(s.ingestAdmin, s.workerAdmin) {
		return s, fmt.Errorf("the ingest and the worker would both listen on %s for their admin endpoints: "+
			"set BILLING_ADMIN_ADDR (the ingest's) and %s (the worker's) apart", s.ingestAdmin, workerAdminVar)
	}
	return s, nil
}

// sameListener reports whether listeners on a and b would take the same port.
func sameListener(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wildcard(ha) || wildcard(hb)
}

// infraEnv is what the services need to know of the devstack's infrastructure.
type infraEnv struct {
	JWKSFile, WebhookSecretKey, NATSURL string
	// Store is where the store is, as BILLING_* variables (Infra.Env).
	Store []string
}

// environ returns the environments of the ingest and the worker: the devstack's key and
// BILLING_WEBHOOK_ALLOW_PRIVATE=true as defaults, then every variable of environ (the
// user's: BILLING_WEBHOOK_ALLOW_PRIVATE=false is respected), then the servers and the
// admin addresses of planUp.
func (s upSetup) environ(environ []string, infra infraEnv) (ingest, worker []string) {
	base := append([]string{
		"BILLING_AUTH_JWKS_FILE=" + infra.JWKSFile,
		"BILLING_WEBHOOK_SECRET_KEY=" + infra.WebhookSecretKey,
		"BILLING_WEBHOOK_ALLOW_PRIVATE=true",
	}, environ...)
	base = append(base, "BILLING_NATS_URL="+infra.NATSURL)
	base = append(base, infra.Store...)
	ingest = append(slices.Clip(base), "BILLING_ADMIN_ADDR="+s.ingestAdmin)
	worker = append(slices.Clip(base), "BILLING_ADMIN_ADDR="+s.workerAdmin)
	return ingest, worker
}

// storeNote says which store the services use, and where.
func storeNote(stack *devstack.Infra) string {
	if stack.Store == store.EngineMongoDB {
		return "store: mongodb, on the embedded FerretDB at " + stack.MongoURI
	}
	return "store: sqlite, the database file " + stack.SQLitePath
}

// webhookNote says whether webhook URLs may be private or loopback, and how to change it.
func webhookNote(allowPrivate bool) string {
	if allowPrivate {
		return "webhook URLs on private and loopback addresses are allowed (development); " +
			"set BILLING_WEBHOOK_ALLOW_PRIVATE=false to refuse them"
	}
	return "webhook URLs on private and loopback addresses are refused (BILLING_WEBHOOK_ALLOW_PRIVATE=false); " +
		"devstack listen needs them allowed"
}

// signInLinkTTL is how long the sign-in link `devstack up` prints stays good.
const signInLinkTTL = time.Hour

// banner is what `devstack up` prints once the API listens; link is the code of the
// dashboard's sign-in link.
func banner(apiURL, tok, link, ingestAdmin, workerAdmin string, notes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nbilling devstack is up\n\n  API:    %s\n  token:  %s\n", apiURL, tok)
	fmt.Fprintf(&b, "  dashboard: %s/dashboard/sign-in/%s\n", apiURL, link)
	fmt.Fprintf(&b, "             (signs in as %s once, within %s; then paste the token above)\n",
		devstack.DefaultMerchant, signInLinkTTL)
	fmt.Fprintf(&b, "  admin:  http://%s (ingest), http://%s (worker): /metrics, /readyz, /livez\n\n",
		localAddr(ingestAdmin), localAddr(workerAdmin))
	for _, n := range notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  export BILLING_API=%s\n  export TOKEN=%s\n\n", apiURL, tok)
	return b.String()
}

// runUp is `devstack up`: it runs until ctx ends.
func runUp(ctx context.Context, args, environ []string, out io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(config.Devstack, *configPath, environ)
	if err != nil {
		return err
	}
	setup, err := planUp(environ, cfg)
	if err != nil {
		return err
	}
	logger := service.NewLogger(cfg)
	service.LogStart(logger, "devstack up", cfg)
	stack, err := devstack.StartInfra(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stack.Close()

	ingestEnv, workerEnv := setup.environ(environ, infraEnv{
		JWKSFile: stack.Key.JWKSPath(), WebhookSecretKey: stack.WebhookSecretKey,
		NATSURL: stack.NATSURL, Store: stack.Env(),
	})
	ingestCfg, err := config.Load(config.Ingest, *configPath, ingestEnv)
	if err != nil {
		return err
	}
	workerCfg, err := config.Load(config.Worker, *configPath, workerEnv)
	if err != nil {
		return err
	}
	// The services' loggers know their configuration's secrets (the webhook secret key
	// the infrastructure made) to mask them.
	ingestLogger := service.NewLogger(ingestCfg).With("service", "ingest")
	workerLogger := service.NewLogger(workerCfg).With("service", "worker")
	service.LogStart(ingestLogger, "ingest", ingestCfg)
	service.LogStart(workerLogger, "worker", workerCfg)
	tok, err := stack.Key.Sign(cfg.AuthIssuer, cfg.AuthAudience, devstack.DefaultMerchant, devstack.AllScopes, 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	// The dashboard's sign-in link: a random code, spent by its first use, that stands
	// for the token, which stays out of URLs.
	link := rand.Text()
	g, gctx := errgroup.WithContext(ctx)
	ready := make(chan service.Addrs, 1)
	g.Go(func() error {
		return service.RunIngest(gctx, ingestCfg, ingestLogger, func(a service.Addrs) { ready <- a },
			service.WithSignInLink(link, tok, time.Now().Add(signInLinkTTL)))
	})
	g.Go(func() error { return service.RunWorker(gctx, workerCfg, workerLogger) })
	select {
	case addrs := <-ready:
		scheme := "http"
		if ingestCfg.TLSCertFile != "" {
			scheme = "https"
		}
		notes := append(slices.Clip(setup.notes), storeNote(stack), webhookNote(ingestCfg.WebhookAllowPrivate))
		fmt.Fprint(out, banner(scheme+"://"+localAddr(addrs.API), tok, link, addrs.Admin, workerCfg.AdminAddr, notes))
	case <-gctx.Done():
	}
	return g.Wait()
}

// envMap returns the variables of environ (os.Environ() form); the last of a name wins.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
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
	forwardTo := fs.String("forward-to", "", "http(s) URL deliveries are forwarded to (required)")
	af := addAPIFlags(fs, envMap(os.Environ()), "the merchant whose events are forwarded")
	events := fs.String("events", "*", "space-separated event types")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *forwardTo == "" {
		return errors.New("--forward-to is required")
	}
	tok, err := af.token(os.Environ(), []string{"webhooks:manage"})
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	l := &devstack.Listener{
		APIURL:     *af.api,
		Token:      tok,
		ForwardTo:  *forwardTo,
		Events:     strings.Fields(*events),
		HTTPClient: &http.Client{},
	}
	return l.Run(ctx, os.Stdout)
}
