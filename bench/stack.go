package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/billing/billing/internal/store"
)

const (
	// startTimeout bounds the start of each process of the stack.
	startTimeout = 60 * time.Second
	// benchMerchant is the merchant of the bench's token.
	benchMerchant = "bench"
	// mongoDatabase is the services' database on the mongodb engine (their default).
	mongoDatabase = "billing"
	// twinDatabase is the twin store's database on the mongodb engine.
	twinDatabase = "billing_empty"
	// infraBanner is what devstack infra prints once NATS and the store are ready.
	infraBanner = "Services started separately need:"
)

// The durability setups of NATS (-nats), as docs/design-notes.md describes them.
const (
	// natsDefault is devstack infra's own server: one server, the default
	// sync_interval (fsync every two minutes).
	natsDefault = "default"
	// natsAlways is one server of its own (devstack nats, alone) fsyncing every write.
	natsAlways = "always"
	// natsCluster is production's: three servers (devstack nats), streams and the
	// bucket with three replicas, every write fsynced.
	natsCluster = "cluster"
)

// natsSetups are the setups, in the order -nats all runs them.
var natsSetups = []string{natsDefault, natsAlways, natsCluster}

// stack is the system under test: devstack infra (NATS and, for mongodb, the store's
// server), one ingest and one worker, each a separate process, on free loopback ports,
// with all data under one temporary directory. On sqlite the store is a file that the
// ingest and the worker open themselves, at sqlitePath.
type stack struct {
	bins    binaries
	dataDir string
	logDir  string
	// engine is the store engine (BILLING_STORE).
	engine string
	// durability is the NATS setup: natsDefault, natsAlways or natsCluster.
	durability string
	// natsAddrs are the client addresses of the NATS servers; natsNodes their processes
	// where they run on their own (natsAlways, natsCluster).
	natsAddrs  []string
	natsNodes  []*process
	sqlitePath string
	// twinSQLitePath is the twin store on sqlite: a store of its own, in the same
	// server or directory, that the growth phase keeps empty but for one merchant.
	twinSQLitePath string

	mongoAddr                string
	apiAddr                  string
	ingestAdmin, workerAdmin string
	// pprofAddrs are the processes' pprof listeners by name, when profiling.
	pprofAddrs map[string]string

	token string

	infra, ingest, worker *process
	// ingestStarts counts the ingest's starts, for the name of its log.
	ingestStarts int
}

// startStack starts the processes on the store engine and waits until each is ready; a
// positive workerBatch sets the worker's BILLING_WORKER_BATCH, and profile gives each a
// pprof listener. On error, whatever was started is stopped.
func startStack(ctx context.Context, bins binaries, dir, engine, durability string, workerBatch int, profile bool) (s *stack, err error) {
	addrs, err := freeAddrs(13)
	if err != nil {
		return nil, fmt.Errorf("finding free ports: %w", err)
	}
	s = &stack{
		bins: bins, dataDir: filepath.Join(dir, "data"), logDir: filepath.Join(dir, "logs"), engine: engine,
		durability: durability, natsAddrs: addrs[0:1], mongoAddr: addrs[1], apiAddr: addrs[2],
		ingestAdmin: addrs[3], workerAdmin: addrs[4],
	}
	if durability == natsCluster {
		s.natsAddrs = []string{addrs[0], addrs[8], addrs[9]}
	}
	// Where devstack infra puts the file by default; set explicitly for every process.
	s.sqlitePath = filepath.Join(s.dataDir, "store", "billing.db")
	s.twinSQLitePath = filepath.Join(s.dataDir, "store-empty", "billing.db")
	if profile {
		s.pprofAddrs = map[string]string{"devstack": addrs[5], "ingest": addrs[6], "worker": addrs[7]}
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.stop())
		}
	}()
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		return s, err
	}

	if err := s.startNATS(ctx, addrs[10:13]); err != nil {
		return s, err
	}
	infraEnv := []string{"BILLING_DEV_NATS_ADDR=" + s.natsAddrs[0]}
	if engine == store.EngineMongoDB {
		infraEnv = append(infraEnv, "BILLING_DEV_MONGO_ADDR="+s.mongoAddr)
	}
	infraArgs := []string{"infra"}
	if durability != natsDefault {
		infraArgs = append(infraArgs, "--no-nats")
	}
	s.infra, err = startProcess("devstack", filepath.Join(s.logDir, "devstack.log"), s.env("devstack", infraEnv...),
		bins.path("devstack"), infraArgs...)
	if err != nil {
		return s, err
	}
	if durability == natsDefault {
		if err := s.infra.waitTCP(ctx, s.natsAddrs[0], startTimeout); err != nil {
			return s, err
		}
	}
	if engine == store.EngineMongoDB {
		if err := s.infra.waitTCP(ctx, s.mongoAddr, startTimeout); err != nil {
			return s, err
		}
	}
	// It prints what the services need once the store is ready too (on sqlite: the
	// database file created, its schema in place).
	if err := s.infra.waitOutput(ctx, infraBanner, startTimeout); err != nil {
		return s, err
	}
	if s.token, err = s.mintToken(ctx, benchMerchant, "charges:write charges:read"); err != nil {
		return s, err
	}

	if err := s.startIngest(ctx); err != nil {
		return s, err
	}
	workerEnv := []string{"BILLING_ADMIN_ADDR=" + s.workerAdmin}
	if workerBatch > 0 {
		workerEnv = append(workerEnv, "BILLING_WORKER_BATCH="+strconv.Itoa(workerBatch))
	}
	s.worker, err = startProcess("worker", filepath.Join(s.logDir, "worker.log"), s.env("worker", workerEnv...), bins.path("worker"))
	if err != nil {
		return s, err
	}
	if err := s.worker.waitReady(ctx, s.workerAdmin, startTimeout); err != nil {
		return s, err
	}
	return s, nil
}

// startNATS starts the servers that run on their own (natsAlways: one alone; natsCluster:
// three, clustered on clusterAddrs) and waits until each takes clients; natsDefault's
// is devstack infra's own.
func (s *stack) startNATS(ctx context.Context, clusterAddrs []string) error {
	for i, addr := range s.natsAddrs {
		if s.durability == natsDefault {
			return nil
		}
		name := fmt.Sprintf("nats-%d", i+1)
		args := []string{"nats", "--name", name, "--listen", addr}
		if s.durability == natsCluster {
			var routes []string
			for j, r := range clusterAddrs {
				if j != i {
					routes = append(routes, r)
				}
			}
			args = append(args, "--cluster", clusterAddrs[i], "--routes", strings.Join(routes, ","))
		}
		p, err := startProcess(name, filepath.Join(s.logDir, name+".log"), s.env(name), s.bins.path("devstack"), args...)
		if err != nil {
			return err
		}
		s.natsNodes = append(s.natsNodes, p)
	}
	for i, p := range s.natsNodes {
		if err := p.waitTCP(ctx, s.natsAddrs[i], startTimeout); err != nil {
			return err
		}
	}
	return nil
}

// replicas is the replicas of every stream and the bucket.
func (s *stack) replicas() int {
	if s.durability == natsCluster {
		return 3
	}
	return 1
}

// unlimited is the environment of an ingest without a rate limit: the bench is one
// merchant sending as fast as it can.
var unlimited = [2]string{"BILLING_RATE_LIMIT=1e9", "BILLING_RATE_BURST=1000000000"}

// startIngest starts the ingest, or starts it again once stopped (its log is then
// ingest-2.log), on the same addresses, and waits until it is ready.
func (s *stack) startIngest(ctx context.Context) error {
	s.ingestStarts++
	logName := "ingest.log"
	if s.ingestStarts > 1 {
		logName = fmt.Sprintf("ingest-%d.log", s.ingestStarts)
	}
	var err error
	s.ingest, err = startProcess("ingest", filepath.Join(s.logDir, logName), s.env("ingest",
		"BILLING_HTTP_ADDR="+s.apiAddr,
		"BILLING_ADMIN_ADDR="+s.ingestAdmin,
		"BILLING_AUTH_JWKS_FILE="+s.jwksPath(),
		unlimited[0], unlimited[1],
	), s.bins.path("ingest"))
	if err != nil {
		return err
	}
	return s.ingest.waitReady(ctx, s.ingestAdmin, startTimeout)
}

// env is the environment of one process: the bench's own without BILLING_*, the stack's
// data directory, servers and store, quiet logs, then extra.
func (s *stack) env(name string, extra ...string) []string {
	env := append(baseEnv(),
		"BILLING_DATA_DIR="+s.dataDir,
		"BILLING_NATS_URL="+s.natsURL(),
		"BILLING_STORE="+s.engine,
		"BILLING_LOG_LEVEL=warn",
		"BILLING_STREAM_REPLICAS="+strconv.Itoa(s.replicas()),
	)
	switch s.engine {
	case store.EngineSQLite:
		env = append(env, "BILLING_SQLITE_PATH="+s.sqlitePath)
	case store.EngineMongoDB:
		env = append(env, "BILLING_MONGO_URI="+s.mongoURI())
	}
	// devstack infra made the key that seals webhook secrets; ingest and worker need it.
	if key, err := os.ReadFile(s.webhookKeyPath()); err == nil {
		env = append(env, "BILLING_WEBHOOK_SECRET_KEY="+strings.TrimSpace(string(key)))
	}
	if addr, ok := s.pprofAddrs[name]; ok {
		env = append(env, "BENCH_PPROF_ADDR="+addr)
	}
	return append(env, extra...)
}

func (s *stack) natsURL() string {
	urls := make([]string, len(s.natsAddrs))
	for i, a := range s.natsAddrs {
		urls[i] = "nats://" + a
	}
	return strings.Join(urls, ",")
}
func (s *stack) mongoURI() string { return "mongodb://" + s.mongoAddr + "/" }
func (s *stack) apiURL() string   { return "http://" + s.apiAddr }

// jwksPath is where devstack keeps the public key of its tokens.
func (s *stack) jwksPath() string { return filepath.Join(s.dataDir, "keys", "jwks.json") }

// storeConfig locates the stack's store for store.Open in the bench.
func (s *stack) storeConfig() store.Config {
	return store.Config{Engine: s.engine, SQLitePath: s.sqlitePath, MongoURI: s.mongoURI(), MongoDatabase: mongoDatabase}
}

// twinStoreConfig locates the twin store.
func (s *stack) twinStoreConfig() store.Config {
	return store.Config{Engine: s.engine, SQLitePath: s.twinSQLitePath, MongoURI: s.mongoURI(), MongoDatabase: twinDatabase}
}

// startTwinIngest starts a second ingest, on the twin store, at apiAddr with its admin
// listener at adminAddr, and waits until it is ready. The caller stops it.
func (s *stack) startTwinIngest(ctx context.Context, apiAddr, adminAddr string) (*process, error) {
	p, err := startProcess("ingest-empty", filepath.Join(s.logDir, "ingest-empty.log"), s.env("ingest",
		"BILLING_HTTP_ADDR="+apiAddr,
		"BILLING_ADMIN_ADDR="+adminAddr,
		"BILLING_AUTH_JWKS_FILE="+s.jwksPath(),
		unlimited[0], unlimited[1],
		"BILLING_SQLITE_PATH="+s.twinSQLitePath,
		"BILLING_MONGO_DATABASE="+twinDatabase,
	), s.bins.path("ingest"))
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, adminAddr, startTimeout); err != nil {
		return nil, errors.Join(err, p.stop())
	}
	return p, nil
}

// webhookKeyPath is the key that devstack infra made to seal webhook secrets.
func (s *stack) webhookKeyPath() string {
	return filepath.Join(s.dataDir, "keys", "webhook-secret.key")
}

// mintToken asks devstack for a token of merchant with scopes (space-separated).
func (s *stack) mintToken(ctx context.Context, merchant, scopes string) (string, error) {
	cmd := exec.CommandContext(ctx, s.bins.path("devstack"), "token",
		"--merchant", merchant, "--scopes", scopes, "--ttl", "2h")
	cmd.Env = s.env("token")
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return "", fmt.Errorf("devstack token: %w\n%s", err, exit.Stderr)
		}
		return "", fmt.Errorf("devstack token: %w", err)
	}
	token := strings.TrimSpace(string(out))
	if token == "" {
		return "", errors.New("devstack token printed nothing")
	}
	return token, nil
}

// processes are the running processes of the stack, by name.
func (s *stack) processes() []*process {
	var ps []*process
	for _, p := range append([]*process{s.ingest, s.worker, s.infra}, s.natsNodes...) {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// metered are the names and pids of ps, the NATS servers running on their own, and the
// bench itself (pid 0), for a cpuMeter.
func (s *stack) metered(ps ...*process) ([]string, []int) {
	var names []string
	var pids []int
	for _, p := range append(ps, s.natsNodes...) {
		names, pids = append(names, p.name), append(pids, p.pid())
	}
	return append(names, "bench"), append(pids, 0)
}

// stopServices stops the ingest and the worker with SIGTERM, leaving the infrastructure.
func (s *stack) stopServices() error {
	var errs []error
	for _, p := range []*process{s.ingest, s.worker} {
		if p != nil {
			errs = append(errs, p.stop())
		}
	}
	return errors.Join(errs...)
}

// stop stops the services, then the infrastructure they use, each with SIGTERM.
func (s *stack) stop() error {
	var errs []error
	for _, p := range s.processes() {
		errs = append(errs, p.stop())
	}
	return errors.Join(errs...)
}
