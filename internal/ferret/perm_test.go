package ferret_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/billing/billing/internal/ferret"
)

// write inserts a document into database db of the server at uri, so that FerretDB
// creates the database's files, and leaves the client connected until the test ends (the
// -wal and -shm files exist while the database is open).
func write(t *testing.T, uri, db string) {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	_, err = client.Database(db).Collection("things").InsertOne(t.Context(), bson.D{{Key: "n", Value: 1}})
	require.NoError(t, err)
}

// requireModes requires dir to be 0700 and every database file in it 0600; it returns
// the database files.
func requireModes(t *testing.T, dir string) []string {
	t.Helper()
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), "data directory %s", dir)
	var files []string
	for _, pattern := range []string{"*.sqlite", "*.sqlite-wal", "*.sqlite-shm", "*.sqlite-journal"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		require.NoError(t, err)
		files = append(files, m...)
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "database file %s", f)
	}
	return files
}

// The store's data are its owner's only: the data directory 0700, the database files
// 0600, whether FerretDB creates them or they were there before (written by an older
// version, more open).
func TestStartPermissions(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")

	s, err := ferret.Start(t.Context(), dir, "127.0.0.1:0", nil)
	require.NoError(t, err)
	write(t, s.URI(), "perm_one")
	files := requireModes(t, dir)
	require.Contains(t, files, filepath.Join(dir, "perm_one.sqlite"))
	require.Contains(t, files, filepath.Join(dir, "perm_one.sqlite-wal"))
	require.Contains(t, files, filepath.Join(dir, "perm_one.sqlite-shm"))
	s.Close()

	// Data left more open: the next start closes it.
	require.NoError(t, os.Chmod(dir, 0o755))
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			require.NoError(t, os.Chmod(f, 0o644))
		}
	}
	s, err = ferret.Start(t.Context(), dir, "127.0.0.1:0", nil)
	require.NoError(t, err)
	defer s.Close()
	requireModes(t, dir)
	write(t, s.URI(), "perm_one")
	write(t, s.URI(), "perm_two")
	files = requireModes(t, dir)
	require.Contains(t, files, filepath.Join(dir, "perm_one.sqlite-wal"))
	require.Contains(t, files, filepath.Join(dir, "perm_two.sqlite"))
}
