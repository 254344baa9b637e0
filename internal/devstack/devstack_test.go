package devstack

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/store"
)

func requireMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, want, fi.Mode().Perm(), "%s is %v", path, fi.Mode().Perm())
}

// The devstack's data are the user's only: BILLING_DATA_DIR and the directories under it
// 0700, the store's database files and the secret keys 0600 (the public JWKS may stay
// 0644), also when an older devstack left them more open.
func TestStartInfraPermissions(t *testing.T) {
	t.Parallel()
	for _, engine := range store.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			cfg := config.Defaults(config.Devstack)
			cfg.Store = engine
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			cfg.DevNATSAddr = "127.0.0.1:-1" // a free port
			cfg.DevMongoAddr = "127.0.0.1:0"
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))

			// A data directory as an older devstack left it.
			dirs := []string{cfg.DataDir, filepath.Join(cfg.DataDir, KeyDir), filepath.Join(cfg.DataDir, NATSDir), filepath.Join(cfg.DataDir, StoreDir)}
			for _, d := range dirs {
				require.NoError(t, os.MkdirAll(d, 0o755))
				require.NoError(t, os.Chmod(d, 0o755))
			}

			infra, err := StartInfra(t.Context(), cfg, logger)
			require.NoError(t, err)
			defer infra.Close()

			db := filepath.Join(cfg.DataDir, StoreDir, SQLiteFile)
			if engine == store.EngineMongoDB {
				client, err := mongo.Connect(options.Client().ApplyURI(infra.MongoURI))
				require.NoError(t, err)
				defer func() { _ = client.Disconnect(context.Background()) }()
				_, err = client.Database(cfg.MongoDatabase).Collection("charges").InsertOne(t.Context(), bson.D{{Key: "n", Value: 1}})
				require.NoError(t, err)
				db = filepath.Join(cfg.DataDir, StoreDir, cfg.MongoDatabase+".sqlite")
			} else {
				require.Equal(t, db, infra.SQLitePath, "the database file is under the data directory")
			}

			for _, d := range dirs {
				requireMode(t, d, 0o700)
			}
			requireMode(t, db, 0o600)
			for _, f := range []string{db + "-wal", db + "-shm"} {
				if _, err := os.Stat(f); err == nil {
					requireMode(t, f, 0o600)
				}
			}
			requireMode(t, filepath.Join(cfg.DataDir, KeyDir, WebhookKeyFile), 0o600)
			requireMode(t, filepath.Join(cfg.DataDir, KeyDir, "signing-key.pem"), 0o600)
			requireMode(t, infra.Key.JWKSPath(), 0o644) // a public key
		})
	}
}
