package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/billing/billing/internal/ferret"
	"os"
	"strings"
	"sync"
	"testing"
)

// EnvMongoURI names the environment variable that points the store tests at a real
// MongoDB instead of the embedded FerretDB.
const EnvMongoURI = "BILLING_TEST_MONGO_URI"

// shared is the FerretDB that New starts once per test binary.
var shared struct {
	once   sync.Once
	dir    string
	server *ferret.Server
	err    error
}

// New returns the URI of a MongoDB-compatible server for t: the value of
// BILLING_TEST_MONGO_URI when it is set, otherwise an embedded FerretDB on SQLite.
//
// To keep tests fast, one FerretDB is started per test binary, on first use, with its data
// in a fresh temporary directory; tests share it and keep apart by each using its own
// database (see Database). Run stops it and removes its data at the end of the binary; a
// binary whose TestMain does not call Run leaves the directory behind in os.TempDir.
func New(t testing.TB) string {
	t.Helper()
	if uri := os.Getenv(EnvMongoURI); uri != "" {
		return uri
	}
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "storetest-ferretdb-")
		if shared.err != nil {
			return
		}
		shared.server, shared.err = ferret.Start(context.Background(), shared.dir, "127.0.0.1:0", nil)
	})
	if shared.err != nil {
		t.Fatalf("starting FerretDB: %v", shared.err)
	}
	return shared.server.URI()
}

// Run runs the tests of m, then stops the FerretDB that New started, if any, and removes
// its data. It returns m.Run's exit code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }
func Run(m *testing.M) int {
	code := m.Run()
	if shared.server != nil {
		shared.server.Close()
	}
	if shared.dir != "" {
		if err := os.RemoveAll(shared.dir); err != nil {
			fmt.Fprintf(os.Stderr, "storetest: removing %s: %v\n", shared.dir, err)
		}
	}
	return code
}

// maxDatabaseLen is the longest database name FerretDB accepts (MongoDB accepts 63 bytes
// too).
const maxDatabaseLen = 63

// Database returns a database name unique to this run of t: its test name reduced to
// letters, digits and underscores, then a random suffix. It fits the rules of both
// FerretDB (^[a-zA-Z0-9_-]{1,63}$) and MongoDB.
func Database(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("generating database name: %v", err)
	}
	suffix := "_" + hex.EncodeToString(b[:])

	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, t.Name())
	if n := maxDatabaseLen - len(suffix); len(name) > n {
		name = name[:n]
	}
	return name + suffix
}
