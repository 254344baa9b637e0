package pgtemp

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStartSettingsStop starts a server with each synchronous_commit, the second in a
// directory too deep for a unix socket, checks the settings it runs with, and stops it.
func TestStartSettingsStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	for _, sync := range []bool{true, false} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		dir, socketDir := t.TempDir(), ""
		if sync {
			socketDir = filepath.Join(dir, "pgdata")
		} else {
			dir = filepath.Join(dir, strings.Repeat("deep", 25))
		}
		s, err := Start(ctx, dir, Options{SyncCommit: sync})
		if errors.Is(err, ErrUnavailable) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, s.DSN())
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"synchronous_commit": "off", "fsync": "on", "max_connections": "200", "shared_buffers": "128MB", "listen_addresses": "127.0.0.1", "unix_socket_directories": socketDir}
		if sync {
			want["synchronous_commit"] = "on"
		}
		for name, value := range want {
			var got string
			if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != value {
				t.Errorf("%s = %q, want %q", name, got, value)
			}
		}
		_ = conn.Close(ctx)
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		if _, err := pgx.Connect(ctx, s.DSN()); err == nil {
			t.Error("the server still accepts connections after Stop")
		}
	}
}
