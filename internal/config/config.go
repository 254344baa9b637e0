// Package config loads and validates the configuration of the billing services: defaults,
// then a YAML file, then BILLING_* environment variables (docs/api.md, "Configuration"). It is
// the one place that reads the environment.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.yaml.in/yaml/v3"

	"github.com/billing/billing/internal/secret"
)

// The roles a worker can run.
const (
	RoleCharges  = "charges"
	RoleWebhooks = "webhooks"
)

// Service names which process loads the configuration; defaults differ per service.
type Service string

// The services.
const (
	Ingest   Service = "ingest"
	Worker   Service = "worker"
	Devstack Service = "devstack"
	// Reconcile is `worker reconcile`: it reads the store, asks the processor and records
	// its summary in NATS (for the dashboard), and needs nothing else.
	Reconcile Service = "reconcile"
)

// Config is the configuration of every service. Each field names its environment variable;
// the YAML key is the same name in lower case without the BILLING_ prefix. A field tagged
// log:"secret" is never logged, one tagged log:"url" is logged without its password
// (LogValue).
type Config struct {
	// HTTPAddr is the ingest API listener. Defaults to ":8080".
	HTTPAddr string `env:"BILLING_HTTP_ADDR" yaml:"http_addr"`
	// AdminAddr serves /livez, /readyz and /metrics. Defaults to ":9090" for the ingest
	// and ":9091" for the worker.
	AdminAddr string `env:"BILLING_ADMIN_ADDR" yaml:"admin_addr"`
	// TLSCertFile and TLSKeyFile, both set, make the API serve HTTPS only (TLS 1.2+).
	TLSCertFile string `env:"BILLING_TLS_CERT_FILE" yaml:"tls_cert_file"`
	TLSKeyFile  string `env:"BILLING_TLS_KEY_FILE" yaml:"tls_key_file"`

	// NATSURL is comma-separated for a cluster. Defaults to "nats://127.0.0.1:4222".
	NATSURL string `env:"BILLING_NATS_URL" yaml:"nats_url" log:"url"`
	// NATSCreds is a NATS credentials file. Unset by default.
	NATSCreds string `env:"BILLING_NATS_CREDS" yaml:"nats_creds"`
	// StreamReplicas for the streams and buckets the services create. Defaults to 1.
	StreamReplicas int `env:"BILLING_STREAM_REPLICAS" yaml:"stream_replicas"`
	// ChargesMaxBytes bounds the CHARGES stream, the commands accepted and not yet
	// settled: once it holds that many bytes the ingest answers 503 until the workers
	// drain it; nothing accepted is dropped. 0 (the default) leaves only the server's
	// limits.
	ChargesMaxBytes int64 `env:"BILLING_CHARGES_MAX_BYTES" yaml:"charges_max_bytes"`

	// Store is the store engine: "sqlite", one database file on one machine, shared by
	// the ingest and any number of workers there; or "mongodb", a MongoDB replica set or
	// sharded cluster, for more than one machine. Defaults to "sqlite".
	Store string `env:"BILLING_STORE" yaml:"store"`
	// SQLitePath is the database file of the sqlite store. Defaults to
	// "./data/store/billing.db".
	SQLitePath string `env:"BILLING_SQLITE_PATH" yaml:"sqlite_path"`
	// MongoURI defaults to "mongodb://127.0.0.1:27017".
	MongoURI string `env:"BILLING_MONGO_URI" yaml:"mongo_uri" log:"url"`
	// MongoDatabase defaults to "billing".
	MongoDatabase string `env:"BILLING_MONGO_DATABASE" yaml:"mongo_database"`

	// AuthIssuer and AuthAudience are the required iss and aud. Default "billing-dev" and
	// "billing-api".
	AuthIssuer   string `env:"BILLING_AUTH_ISSUER" yaml:"auth_issuer"`
	AuthAudience string `env:"BILLING_AUTH_AUDIENCE" yaml:"auth_audience"`
	// AuthJWKSFile and AuthJWKSURL are sources of public keys.
	AuthJWKSFile string `env:"BILLING_AUTH_JWKS_FILE" yaml:"auth_jwks_file"`
	AuthJWKSURL  string `env:"BILLING_AUTH_JWKS_URL" yaml:"auth_jwks_url" log:"url"`
	// AuthHS256Secret enables HS256 (development). Never logged.
	AuthHS256Secret string `env:"BILLING_AUTH_HS256_SECRET" yaml:"auth_hs256_secret" log:"secret"`

	// IdempotencyTTL is how long idempotency keys are kept. Defaults to 24h.
	IdempotencyTTL time.Duration `env:"BILLING_IDEMPOTENCY_TTL" yaml:"idempotency_ttl"`
	// RateLimit is requests per second per merchant; RateBurst the burst. Default 100, 200.
	RateLimit float64 `env:"BILLING_RATE_LIMIT" yaml:"rate_limit"`
	RateBurst int     `env:"BILLING_RATE_BURST" yaml:"rate_burst"`

	// Processor is "simulated" (default) or "http".
	Processor string `env:"BILLING_PROCESSOR" yaml:"processor"`
	// ProcessorURL is the base URL for the http processor.
	ProcessorURL string `env:"BILLING_PROCESSOR_URL" yaml:"processor_url" log:"url"`
	// ProcessorTimeout bounds one processor call. Defaults to 10s.
	ProcessorTimeout time.Duration `env:"BILLING_PROCESSOR_TIMEOUT" yaml:"processor_timeout"`

	// WorkerBatch is how many commands a worker fetches at once. Defaults to 256.
	WorkerBatch int `env:"BILLING_WORKER_BATCH" yaml:"worker_batch"`
	// WorkerConcurrency bounds concurrent processor calls per worker. Defaults to 64.
	WorkerConcurrency int `env:"BILLING_WORKER_CONCURRENCY" yaml:"worker_concurrency"`
	// WorkerRetrySchedule is the delay before each retry of a command that met a transient
	// error; after the last, the charge fails with processing_error. Defaults to
	// "1s,2s,5s,15s,30s,1m,2m,5m".
	WorkerRetrySchedule []time.Duration `env:"BILLING_WORKER_RETRY_SCHEDULE" envSeparator:"," yaml:"worker_retry_schedule"`
	// WorkerAckWait is how long a fetched command stays invisible to other workers before
	// it is redelivered. Defaults to 30s.
	WorkerAckWait time.Duration `env:"BILLING_WORKER_ACK_WAIT" yaml:"worker_ack_wait"`
	// ShutdownTimeout bounds the drain on SIGTERM. Defaults to 30s.
	ShutdownTimeout time.Duration `env:"BILLING_SHUTDOWN_TIMEOUT" yaml:"shutdown_timeout"`

	// WebhookRetrySchedule is the delay after each failed webhook attempt.
	WebhookRetrySchedule []time.Duration `env:"BILLING_WEBHOOK_RETRY_SCHEDULE" envSeparator:"," yaml:"webhook_retry_schedule"`
	// WebhookTimeout defaults to 15s.
	WebhookTimeout time.Duration `env:"BILLING_WEBHOOK_TIMEOUT" yaml:"webhook_timeout"`
	// WebhookAllowPrivate allows private and loopback webhook URLs (development).
	WebhookAllowPrivate bool `env:"BILLING_WEBHOOK_ALLOW_PRIVATE" yaml:"webhook_allow_private"`
	// WebhookSecretKey seals endpoint secrets at rest: 32 bytes in base64. Required by
	// the ingest and the worker; never logged.
	WebhookSecretKey string `env:"BILLING_WEBHOOK_SECRET_KEY" yaml:"webhook_secret_key" log:"secret"`
	// WebhookDisableAfter disables an endpoint whose deliveries have all failed for this
	// long. Defaults to 120h (5 days).
	WebhookDisableAfter time.Duration `env:"BILLING_WEBHOOK_DISABLE_AFTER" yaml:"webhook_disable_after"`
	// WebhookConcurrency bounds deliveries in flight per worker; WebhookEndpointConcurrency
	// per endpoint, so a slow endpoint cannot hold the others back. Default 64 and 16.
	WebhookConcurrency         int `env:"BILLING_WEBHOOK_CONCURRENCY" yaml:"webhook_concurrency"`
	WebhookEndpointConcurrency int `env:"BILLING_WEBHOOK_ENDPOINT_CONCURRENCY" yaml:"webhook_endpoint_concurrency"`
	// EventRetention is how long events and delivery records are kept. Defaults to 720h
	// (30 days).
	EventRetention time.Duration `env:"BILLING_EVENT_RETENTION" yaml:"event_retention"`

	// WorkerRoles are what a worker does: "charges" (settle commands), "webhooks" (fan
	// out events and deliver them), or both. Defaults to "charges,webhooks".
	WorkerRoles []string `env:"BILLING_WORKER_ROLES" envSeparator:"," yaml:"worker_roles"`

	// LogLevel is debug, info, warn or error (default info); LogFormat json (default) or text.
	LogLevel  string `env:"BILLING_LOG_LEVEL" yaml:"log_level"`
	LogFormat string `env:"BILLING_LOG_FORMAT" yaml:"log_format"`

	// OTelEndpoint (the collector's base URL; traces go to its /v1/traces) or
	// OTelTracesEndpoint (the full URL, which wins), either set, export traces over
	// OTLP/HTTP; both unset (the default), tracing is off. The standard OpenTelemetry
	// variables, not BILLING_ ones: the exporter reads the other OTEL_EXPORTER_OTLP_*
	// (headers, timeout) itself, and the SDK OTEL_TRACES_SAMPLER.
	OTelEndpoint       string `env:"OTEL_EXPORTER_OTLP_ENDPOINT" yaml:"otel_exporter_otlp_endpoint" log:"url"`
	OTelTracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" yaml:"otel_exporter_otlp_traces_endpoint" log:"url"`
	// OTelServiceName names the process in its traces. Defaults to billing-ingest or
	// billing-worker.
	OTelServiceName string `env:"OTEL_SERVICE_NAME" yaml:"otel_service_name"`

	// DataDir is where the devstack keeps NATS, store and key data. Defaults to "./data".
	DataDir string `env:"BILLING_DATA_DIR" yaml:"data_dir"`
	// DevNATSAddr and DevMongoAddr are the devstack's listeners. Default
	// "127.0.0.1:4222" and "127.0.0.1:27017".
	DevNATSAddr  string `env:"BILLING_DEV_NATS_ADDR" yaml:"dev_nats_addr"`
	DevMongoAddr string `env:"BILLING_DEV_MONGO_ADDR" yaml:"dev_mongo_addr"`
}

// Defaults returns the configuration of service before any file or variable applies.
func Defaults(service Service) Config {
	admin := ":9090"
	if service == Worker {
		admin = ":9091"
	}
	return Config{
		HTTPAddr:                   ":8080",
		AdminAddr:                  admin,
		NATSURL:                    "nats://127.0.0.1:4222",
		StreamReplicas:             1,
		Store:                      "sqlite",
		SQLitePath:                 "./data/store/billing.db",
		MongoURI:                   "mongodb://127.0.0.1:27017",
		MongoDatabase:              "billing",
		AuthIssuer:                 "billing-dev",
		AuthAudience:               "billing-api",
		IdempotencyTTL:             24 * time.Hour,
		RateLimit:                  100,
		RateBurst:                  200,
		Processor:                  "simulated",
		ProcessorTimeout:           10 * time.Second,
		WorkerBatch:                256,
		WorkerConcurrency:          64,
		WorkerRetrySchedule:        []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute},
		WorkerAckWait:              30 * time.Second,
		ShutdownTimeout:            30 * time.Second,
		WebhookRetrySchedule:       []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour},
		WebhookTimeout:             15 * time.Second,
		WebhookDisableAfter:        5 * 24 * time.Hour,
		WebhookConcurrency:         64,
		WebhookEndpointConcurrency: 16,
		EventRetention:             30 * 24 * time.Hour,
		WorkerRoles:                []string{RoleCharges, RoleWebhooks},
		LogLevel:                   "info",
		LogFormat:                  "json",
		DataDir:                    "./data",
		DevNATSAddr:                "127.0.0.1:4222",
		DevMongoAddr:               "127.0.0.1:27017",
	}
}

// Load returns the configuration of service: defaults, then the YAML file at path (if
// path is empty, BILLING_CONFIG names it; none is fine), then the environment environ
// (os.Environ() form). The result is validated; errors name the offending key.
func Load(service Service, path string, environ []string) (Config, error) {
	vars := toMap(environ)
	cfg := Defaults(service)
	if path == "" {
		path = vars["BILLING_CONFIG"]
	}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("reading config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file is fine
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars}); err != nil {
		return Config{}, nameKeys(err)
	}
	if err := cfg.Validate(service); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// nameKeys rewrites the env library's parse errors, which name Go fields, to name the
// variables an operator sets.
func nameKeys(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("configuration: %w", err)
	}
	t := reflect.TypeFor[Config]()
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := t.FieldByName(pe.Name); ok {
				errs = append(errs, fmt.Errorf("%s: %w", f.Tag.Get("env"), pe.Err))
				continue
			}
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func toMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Validate checks cfg for service; every error names the variable to fix.
func (c *Config) Validate(service Service) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	checkAddr := func(key, addr string) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "must be host:port, got %q", addr)
		}
	}
	checkAddr("BILLING_HTTP_ADDR", c.HTTPAddr)
	checkAddr("BILLING_ADMIN_ADDR", c.AdminAddr)
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("BILLING_TLS_CERT_FILE", "BILLING_TLS_CERT_FILE and BILLING_TLS_KEY_FILE must be set together")
	}
	if c.NATSURL == "" {
		bad("BILLING_NATS_URL", "must not be empty")
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		bad("BILLING_STREAM_REPLICAS", "must be 1 to 5, got %d", c.StreamReplicas)
	}
	if c.ChargesMaxBytes < 0 {
		bad("BILLING_CHARGES_MAX_BYTES", "must not be negative, got %d", c.ChargesMaxBytes)
	}
	switch c.Store {
	case "sqlite":
		if c.SQLitePath == "" {
			bad("BILLING_SQLITE_PATH", "must not be empty with BILLING_STORE=sqlite")
		}
	case "mongodb":
	default:
		bad("BILLING_STORE", "must be sqlite or mongodb, got %q", c.Store)
	}
	if !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		bad("BILLING_MONGO_URI", "must be a mongodb:// or mongodb+srv:// URI")
	}
	if c.MongoDatabase == "" || strings.ContainsAny(c.MongoDatabase, `/\. "$`) {
		bad("BILLING_MONGO_DATABASE", "must be a valid database name")
	}
	if c.AuthIssuer == "" {
		bad("BILLING_AUTH_ISSUER", "must not be empty")
	}
	if c.AuthAudience == "" {
		bad("BILLING_AUTH_AUDIENCE", "must not be empty")
	}
	if service == Ingest && c.AuthJWKSFile == "" && c.AuthJWKSURL == "" && c.AuthHS256Secret == "" {
		bad("BILLING_AUTH_JWKS_FILE", "one of BILLING_AUTH_JWKS_FILE, BILLING_AUTH_JWKS_URL or BILLING_AUTH_HS256_SECRET must be set")
	}
	if c.AuthJWKSFile != "" && c.AuthJWKSURL != "" {
		bad("BILLING_AUTH_JWKS_URL", "set BILLING_AUTH_JWKS_FILE or BILLING_AUTH_JWKS_URL, not both")
	}
	if c.AuthJWKSURL != "" {
		if u, err := url.Parse(c.AuthJWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("BILLING_AUTH_JWKS_URL", "must be an http(s) URL")
		}
	}
	if c.AuthHS256Secret != "" && len(c.AuthHS256Secret) < 32 {
		bad("BILLING_AUTH_HS256_SECRET", "must be at least 32 bytes")
	}
	if c.IdempotencyTTL < time.Minute {
		bad("BILLING_IDEMPOTENCY_TTL", "must be at least 1m, got %s", c.IdempotencyTTL)
	}
	if c.RateLimit <= 0 {
		bad("BILLING_RATE_LIMIT", "must be positive")
	}
	if c.RateBurst < 1 {
		bad("BILLING_RATE_BURST", "must be at least 1")
	}
	switch c.Processor {
	case "simulated":
	case "http":
		if u, err := url.Parse(c.ProcessorURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("BILLING_PROCESSOR_URL", "must be an http(s) URL when BILLING_PROCESSOR is http")
		}
	default:
		bad("BILLING_PROCESSOR", "must be simulated or http, got %q", c.Processor)
	}
	if c.ProcessorTimeout <= 0 {
		bad("BILLING_PROCESSOR_TIMEOUT", "must be positive")
	}
	if c.WorkerBatch < 1 || c.WorkerBatch > 4096 {
		bad("BILLING_WORKER_BATCH", "must be 1 to 4096")
	}
	if c.WorkerConcurrency < 1 {
		bad("BILLING_WORKER_CONCURRENCY", "must be at least 1")
	}
	checkSchedule := func(key string, s []time.Duration) {
		if len(s) == 0 {
			bad(key, "must list at least one delay")
		}
		for _, d := range s {
			if d <= 0 {
				bad(key, "delays must be positive, got %s", d)
			}
		}
	}
	checkSchedule("BILLING_WORKER_RETRY_SCHEDULE", c.WorkerRetrySchedule)
	checkSchedule("BILLING_WEBHOOK_RETRY_SCHEDULE", c.WebhookRetrySchedule)
	if c.WorkerAckWait < time.Second {
		bad("BILLING_WORKER_ACK_WAIT", "must be at least 1s")
	}
	if c.ShutdownTimeout <= 0 {
		bad("BILLING_SHUTDOWN_TIMEOUT", "must be positive")
	}
	if c.WebhookTimeout <= 0 {
		bad("BILLING_WEBHOOK_TIMEOUT", "must be positive")
	}
	if service == Ingest || service == Worker {
		if _, err := secret.ParseKey(c.WebhookSecretKey); err != nil {
			bad("BILLING_WEBHOOK_SECRET_KEY", "must be 32 random bytes in base64 (for example: openssl rand -base64 32)")
		}
	}
	if c.WebhookDisableAfter <= 0 {
		bad("BILLING_WEBHOOK_DISABLE_AFTER", "must be positive")
	}
	if c.WebhookConcurrency < 1 {
		bad("BILLING_WEBHOOK_CONCURRENCY", "must be at least 1")
	}
	if c.WebhookEndpointConcurrency < 1 || c.WebhookEndpointConcurrency > c.WebhookConcurrency {
		bad("BILLING_WEBHOOK_ENDPOINT_CONCURRENCY", "must be 1 to BILLING_WEBHOOK_CONCURRENCY")
	}
	if c.EventRetention < time.Hour {
		bad("BILLING_EVENT_RETENTION", "must be at least 1h")
	}
	if service == Worker {
		if len(c.WorkerRoles) == 0 {
			bad("BILLING_WORKER_ROLES", "must name at least one role")
		}
		for _, r := range c.WorkerRoles {
			if r != RoleCharges && r != RoleWebhooks {
				bad("BILLING_WORKER_ROLES", "unknown role %q (charges, webhooks)", r)
			}
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("BILLING_LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		bad("BILLING_LOG_FORMAT", "must be json or text, got %q", c.LogFormat)
	}
	if service == Devstack {
		checkAddr("BILLING_DEV_NATS_ADDR", c.DevNATSAddr)
		checkAddr("BILLING_DEV_MONGO_ADDR", c.DevMongoAddr)
		if c.DataDir == "" {
			bad("BILLING_DATA_DIR", "must not be empty")
		}
	}
	return errors.Join(errs...)
}
