package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/secret"
)

// The start-up record says which build runs and with what configuration, its secrets
// masked, and the process's logger masks its configured secrets wherever they appear.
func TestStartLogMasksSecrets(t *testing.T) {
	t.Parallel()
	key := secret.NewKey()
	cfg, err := config.Load(config.Worker, "", []string{
		"BILLING_WEBHOOK_SECRET_KEY=" + key,
		"BILLING_MONGO_URI=mongodb://billing:mongo-pass-123@db:27017",
		"BILLING_NATS_URL=nats://ops:nats-pass-456@n1:4222",
	})
	require.NoError(t, err)
	var buf bytes.Buffer
	logger := newLogger(&buf, cfg) // JSON, the default
	LogStart(logger, "worker", cfg)
	logger.Error("opening the box", "error", fmt.Errorf("key %q: bad", key))
	logger.Warn("connecting to mongodb://billing:mongo-pass-123@db:27017 failed")

	out := buf.String()
	for _, s := range []string{key, "mongo-pass-123", "nats-pass-456"} {
		require.NotContains(t, out, s)
	}
	first, _, _ := strings.Cut(out, "\n")
	var rec struct {
		Msg     string
		Process string
		Build   map[string]any
		Config  map[string]any
	}
	require.NoError(t, json.Unmarshal([]byte(first), &rec), first)
	require.Equal(t, "starting", rec.Msg)
	require.Equal(t, "worker", rec.Process)
	require.Contains(t, rec.Build["go"], "go1.")
	require.Contains(t, rec.Build, "version")
	require.Equal(t, "***", rec.Config["webhook_secret_key"])
	require.Equal(t, "mongodb://billing:***@db:27017", rec.Config["mongo_uri"])
	require.Equal(t, "nats://ops:***@n1:4222", rec.Config["nats_url"])
	require.Equal(t, "sqlite", rec.Config["store"])
	require.EqualValues(t, 256, rec.Config["worker_batch"])
}
