package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/secret"
)

// The configuration as logged masks the secrets and the URLs' passwords, and shows the rest.
func TestLogValueMasksSecrets(t *testing.T) {
	t.Parallel()
	webhookKey := secret.NewKey()
	hsSecret := strings.Repeat("h", 40)
	cfg, err := Load(Worker, "", []string{
		"BILLING_WEBHOOK_SECRET_KEY=" + webhookKey,
		"BILLING_AUTH_HS256_SECRET=" + hsSecret,
		"BILLING_MONGO_URI=mongodb://billing:mongo-pass-123@db1:27017,db2:27017/?replicaSet=rs0",
		"BILLING_NATS_URL=nats://ops:nats-pass-456@n1:4222,nats://nats-token-789@n2:4222,nats://n3:4222",
		"BILLING_PROCESSOR=http",
		"BILLING_PROCESSOR_URL=https://acct:proc-pass-000@processor.example/v1",
		"BILLING_RATE_LIMIT=42",
	})
	require.NoError(t, err)

	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("starting", "config", cfg)
	logged := buf.String()
	for _, s := range []string{webhookKey, hsSecret, "mongo-pass-123", "nats-pass-456", "nats-token-789", "proc-pass-000"} {
		require.NotContains(t, logged, s)
		require.NotContains(t, fmt.Sprint(cfg), s)
		require.NotContains(t, fmt.Sprintf("%+v", cfg), s)
	}
	for _, s := range []string{
		"config.webhook_secret_key=***",
		"config.auth_hs256_secret=***",
		`config.mongo_uri="mongodb://billing:***@db1:27017,db2:27017/?replicaSet=rs0"`,
		"config.nats_url=nats://ops:***@n1:4222,nats://***@n2:4222,nats://n3:4222",
		"config.processor_url=https://acct:***@processor.example/v1",
		"config.rate_limit=42",
		"config.worker_retry_schedule=1s,2s,5s,15s,30s,1m0s,2m0s,5m0s",
		"config.worker_roles=charges,webhooks",
		"config.auth_jwks_url=\"\"",
	} {
		require.Contains(t, logged, s)
	}
	require.ElementsMatch(t, []string{webhookKey, hsSecret, "mongo-pass-123", "nats-pass-456", "nats-token-789", "proc-pass-000"}, cfg.Secrets())

	// Unset secrets are shown unset.
	var plain bytes.Buffer
	slog.New(slog.NewTextHandler(&plain, nil)).Info("starting", "config", Defaults(Ingest))
	require.Contains(t, plain.String(), "config.webhook_secret_key=\"\"")
	require.Contains(t, plain.String(), "config.nats_url=nats://127.0.0.1:4222")
}
