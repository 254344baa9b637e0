package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/openapitest"
	"github.com/billing/billing/internal/store"
)

// startTimeout bounds how long a process may take to listen or become ready.
const startTimeout = 60 * time.Second

// merchant is the merchant the test's token is for.
const merchant = "m_e2e"

// system is the running billing system: the devstack's infrastructure, one ingest,
// workers, the payment processor, and a merchant's token and HTTP client.
type system struct {
	logDir  string
	dataDir string
	// webhookKey is the key devstack infra made to seal webhook secrets.
	webhookKey string
	natsAddr   string
	mongoAddr  string
	// natsURL is the services' BILLING_NATS_URL: natsAddr's, or every server's of a
	// cluster; replicas their BILLING_STREAM_REPLICAS.
	natsURL  string
	replicas int
	// nodes are the servers of the NATS cluster (cluster_test.go), if any, and js the
	// test's own connection to it.
	nodes []*natsNode
	js    jetstream.JetStream
	// extraEnv is added to the environment of every ingest and worker.
	extraEnv []string
	// engine is the store's (BILLING_STORE); sqlitePath its file, for sqlite.
	engine     string
	sqlitePath string

	infra     *process
	processor *processor
	ingest    *service // the first of ingests
	ingests   []*service
	workers   []*service
	token     string
	// apiURLs are the ingests' APIs; each request goes to one of those in rotation
	// (apiURL), as a load balancer would send it.
	apiURLs []string
	// outOfRotation are the indexes in apiURLs that a load balancer has taken out, as it
	// does once an ingest is told to stop.
	rotationMu    sync.Mutex
	outOfRotation map[int]bool
	client        *http.Client
}

// service is a running ingest or worker.
type service struct {
	*process
	adminAddr string
	env       []string
}

// setup starts the devstack's infrastructure, the processor, one ingest and two workers,
// and waits until all are ready.
func setup(t *testing.T, engine string) *system {
	t.Helper()
	addrs := freeAddrs(t, 3)
	s := &system{logDir: logDir(t), dataDir: t.TempDir(), natsAddr: addrs[0], mongoAddr: addrs[1], engine: engine,
		natsURL: "nats://" + addrs[0], replicas: 1}
	s.sqlitePath = filepath.Join(s.dataDir, "store", "billing.db")
	s.startInfra(t)
	s.startServices(t, []string{addrs[2]}, 2)
	return s
}

// startServices starts what runs beside the infrastructure: the processor, an ingest
// serving the API on each of apiAddrs and workers workers, and waits until all are ready.
func (s *system) startServices(t *testing.T, apiAddrs []string, workers int) {
	t.Helper()
	s.token = s.mintToken(t)
	key, err := os.ReadFile(filepath.Join(s.dataDir, "keys", "webhook-secret.key"))
	require.NoError(t, err, "devstack infra writes the webhook secret key")
	s.webhookKey = strings.TrimSpace(string(key))
	s.processor = startProcessor(t)

	for i, addr := range apiAddrs {
		s.ingests = append(s.ingests, s.startIngest(t, fmt.Sprintf("ingest-%d", i+1), addr))
		s.apiURLs = append(s.apiURLs, "http://"+addr)
	}
	s.ingest = s.ingests[0]
	for i, admin := range freeAddrs(t, workers) {
		s.workers = append(s.workers, s.startWorker(t, fmt.Sprintf("worker-%d", i+1), admin))
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	// Every request and answer of the tests is checked against api/openapi.yaml.
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: &openapitest.Transport{Base: transport, Report: t}}
	t.Cleanup(s.client.CloseIdleConnections)
	s.putSecretsInPlay(t)
}

// infraEnv is the environment of the devstack commands.
func (s *system) infraEnv() []string {
	return append(baseEnv(),
		"BILLING_DATA_DIR="+s.dataDir,
		"BILLING_DEV_NATS_ADDR="+s.natsAddr,
		"BILLING_DEV_MONGO_ADDR="+s.mongoAddr,
		"BILLING_LOG_FORMAT=text",
		"BILLING_STORE="+s.engine,
	)
}

// startInfra runs `devstack infra` and waits until NATS and the store accept connections.
func (s *system) startInfra(t *testing.T) {
	t.Helper()
	s.infra = startProcess(t, s.logDir, "devstack", s.infraEnv(), "devstack", "infra")
	s.infra.waitTCP(t, s.natsAddr, startTimeout)
	if s.engine == store.EngineMongoDB {
		s.infra.waitTCP(t, s.mongoAddr, startTimeout)
	}
}

// mintToken runs `devstack token` for the test's merchant.
func (s *system) mintToken(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "devstack"), "token",
		"--merchant", merchant, "--scopes", "charges:write charges:read events:read webhooks:manage", "--ttl", "1h")
	cmd.Env = s.infraEnv()
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "devstack token: %s", stderr)
	tok := strings.TrimSpace(string(out))
	require.Equal(t, 2, strings.Count(tok, "."), "devstack token printed %q", out)
	return tok
}

// serviceEnv is what every ingest and worker sees.
func (s *system) serviceEnv(adminAddr string) []string {
	return append(append(baseEnv(),
		"BILLING_ADMIN_ADDR="+adminAddr,
		"BILLING_NATS_URL="+s.natsURL,
		fmt.Sprintf("BILLING_STREAM_REPLICAS=%d", s.replicas),
		"BILLING_STORE="+s.engine,
		"BILLING_SQLITE_PATH="+s.sqlitePath,
		"BILLING_MONGO_URI=mongodb://"+s.mongoAddr,
		"BILLING_LOG_FORMAT=text",
		"BILLING_SHUTDOWN_TIMEOUT=15s",
		"BILLING_WEBHOOK_SECRET_KEY="+s.webhookKey,
		// The test's webhook receiver listens on loopback.
		"BILLING_WEBHOOK_ALLOW_PRIVATE=true",
		"BILLING_WEBHOOK_TIMEOUT=2s",
		"BILLING_WEBHOOK_RETRY_SCHEDULE=200ms,500ms,1s,2s,2s,2s,2s",
	), s.extraEnv...)
}

// startIngest runs an ingest named name (its log file's name) serving the API on
// httpAddr and waits until it is ready.
func (s *system) startIngest(t *testing.T, name, httpAddr string) *service {
	t.Helper()
	admin := freeAddrs(t, 1)[0]
	env := append(s.serviceEnv(admin),
		"BILLING_HTTP_ADDR="+httpAddr,
		"BILLING_AUTH_JWKS_FILE="+filepath.Join(s.dataDir, "keys", "jwks.json"),
		"BILLING_RATE_LIMIT=100000",
		"BILLING_RATE_BURST=100000",
	)
	return s.startService(t, name, "ingest", admin, env)
}

// startWorker runs a worker named name (its log file's name) with its admin server on
// adminAddr, calling the test's processor, and waits until it is ready.
func (s *system) startWorker(t *testing.T, name, adminAddr string) *service {
	t.Helper()
	env := append(s.serviceEnv(adminAddr),
		"BILLING_PROCESSOR=http",
		"BILLING_PROCESSOR_URL="+s.processor.URL(),
		"BILLING_WORKER_RETRY_SCHEDULE=100ms,200ms,500ms,1s,1s,1s,1s,1s,1s,1s",
		"BILLING_WORKER_ACK_WAIT=5s",
	)
	return s.startService(t, name, "worker", adminAddr, env)
}

// restartWorker starts a new worker in the place of w: same admin address, same
// environment.
func (s *system) restartWorker(t *testing.T, w *service, name string) *service {
	t.Helper()
	return s.startService(t, name, "worker", w.adminAddr, w.env)
}

// restartIngest starts a new ingest in the place of in: same addresses, same environment.
func (s *system) restartIngest(t *testing.T, in *service, name string) *service {
	t.Helper()
	return s.startService(t, name, "ingest", in.adminAddr, in.env)
}

func (s *system) startService(t *testing.T, name, binary, adminAddr string, env []string) *service {
	t.Helper()
	p := startProcess(t, s.logDir, name, env, binary)
	p.waitReady(t, adminAddr, startTimeout)
	return &service{process: p, adminAddr: adminAddr, env: env}
}

// processes is every process the test started, killed ones included.
func (s *system) processes() []*process {
	ps := []*process{s.infra}
	for _, in := range s.ingests {
		ps = append(ps, in.process)
	}
	for _, n := range s.nodes {
		ps = append(ps, n.procs...)
	}
	for _, w := range s.workers {
		ps = append(ps, w.process)
	}
	return ps
}
