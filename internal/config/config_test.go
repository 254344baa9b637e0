package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/secret"
)

// key is a valid BILLING_WEBHOOK_SECRET_KEY setting.
var key = "BILLING_WEBHOOK_SECRET_KEY=" + secret.NewKey()

func TestDefaultsPerService(t *testing.T) {
	t.Parallel()
	ingest, err := Load(Ingest, "", []string{key, "BILLING_AUTH_HS256_SECRET=" + strings.Repeat("s", 32)})
	require.NoError(t, err)
	require.Equal(t, ":9090", ingest.AdminAddr)
	require.Equal(t, 24*time.Hour, ingest.IdempotencyTTL)
	worker, err := Load(Worker, "", []string{key})
	require.NoError(t, err)
	require.Equal(t, ":9091", worker.AdminAddr)
	require.Equal(t, "simulated", worker.Processor)
	// The reconciliation reads the store and asks the processor: no secret key needed,
	// but a bad processor setting still stops it.
	_, err = Load(Reconcile, "", nil)
	require.NoError(t, err)
	_, err = Load(Reconcile, "", []string{"BILLING_PROCESSOR=http"})
	require.ErrorContains(t, err, "BILLING_PROCESSOR_URL")
}

func TestEnvironmentOverridesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "billing.yaml")
	require.NoError(t, os.WriteFile(path, []byte("rate_limit: 5\nrate_burst: 7\nmongo_database: fromfile\nworker_retry_schedule: [1s, 3s]\n"), 0o600))
	cfg, err := Load(Worker, "", []string{key, "BILLING_CONFIG=" + path, "BILLING_RATE_BURST=9", "BILLING_WEBHOOK_RETRY_SCHEDULE=1s,2m"})
	require.NoError(t, err)
	require.Equal(t, 5.0, cfg.RateLimit)
	require.Equal(t, 9, cfg.RateBurst)
	require.Equal(t, "fromfile", cfg.MongoDatabase)
	require.Equal(t, []time.Duration{time.Second, 3 * time.Second}, cfg.WorkerRetrySchedule)
	require.Equal(t, []time.Duration{time.Second, 2 * time.Minute}, cfg.WebhookRetrySchedule)
}

func TestExampleFileLoads(t *testing.T) {
	t.Parallel()
	_, err := Load(Worker, "../../config/billing.example.yaml", []string{key})
	require.NoError(t, err)
}

// Bad configuration stops the process with a message naming the key.
func TestErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	cases := map[string][]string{
		"BILLING_RATE_LIMIT":             {"BILLING_RATE_LIMIT=fast"},
		"BILLING_IDEMPOTENCY_TTL":        {"BILLING_IDEMPOTENCY_TTL=1s"},
		"BILLING_PROCESSOR_URL":          {"BILLING_PROCESSOR=http"},
		"BILLING_PROCESSOR":              {"BILLING_PROCESSOR=stripe"},
		"BILLING_TLS_CERT_FILE":          {"BILLING_TLS_KEY_FILE=/k"},
		"BILLING_STREAM_REPLICAS":        {"BILLING_STREAM_REPLICAS=0"},
		"BILLING_MONGO_URI":              {"BILLING_MONGO_URI=postgres://x"},
		"BILLING_LOG_LEVEL":              {"BILLING_LOG_LEVEL=loud"},
		"BILLING_HTTP_ADDR":              {"BILLING_HTTP_ADDR=8080"},
		"BILLING_WEBHOOK_RETRY_SCHEDULE": {"BILLING_WEBHOOK_RETRY_SCHEDULE=5s,-1s"},
		"BILLING_AUTH_HS256_SECRET":      {"BILLING_AUTH_HS256_SECRET=short"},
		"BILLING_WEBHOOK_SECRET_KEY":     {"BILLING_WEBHOOK_SECRET_KEY=c2hvcnQ="},
		"BILLING_WORKER_ROLES":           {"BILLING_WORKER_ROLES=charges,mining"},
	}
	for key, env := range cases {
		_, err := Load(Worker, "", env)
		require.Error(t, err, key)
		require.Contains(t, err.Error(), key)
	}
	_, err := Load(Ingest, "", nil)
	require.ErrorContains(t, err, "BILLING_AUTH_JWKS_FILE")

	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("rate_limt: 5\n"), 0o600))
	_, err = Load(Worker, path, []string{key})
	require.ErrorContains(t, err, "rate_limt")
	// The key is never part of an error message.
	_, err = Load(Worker, "", []string{"BILLING_WEBHOOK_SECRET_KEY=not-a-key-but-secret"})
	require.NotContains(t, err.Error(), "not-a-key-but-secret")
}
