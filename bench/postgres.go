package main

import (
	"context"
	"fmt"

	"github.com/billing/billing/bench/internal/pgtemp"
)

// postgresServer is a throwaway PostgreSQL server for the River peer (bench/peer): Debian's
// package, a new cluster in a directory of the run, listening on a free loopback port.
type postgresServer struct {
	srv *pgtemp.Server
}

// ensurePostgres returns the directory of Debian's PostgreSQL server binaries, the
// highest version installed, installing the postgresql package with apt-get if there is
// none. Its error says that the peer is skipped and why; the bench prints it and goes on.
func ensurePostgres(ctx context.Context) (binDir string, err error) {
	binDir, err = pgtemp.Ensure(ctx)
	if err != nil {
		return "", peerSkipped(err)
	}
	return binDir, nil
}

// startPostgres creates a cluster in dir/pgdata and runs a server on it, with fsync on and
// synchronous_commit on or off as syncCommit says, and returns once it accepts
// connections. Its log is dir/postgres.log. When PostgreSQL cannot be installed or
// started here, the error says that the peer is skipped and why.
func startPostgres(ctx context.Context, dir string, syncCommit bool) (*postgresServer, error) {
	srv, err := pgtemp.Start(ctx, dir, pgtemp.Options{SyncCommit: syncCommit})
	if err != nil {
		return nil, peerSkipped(err)
	}
	return &postgresServer{srv: srv}, nil
}

// dsn is the server's connection string: user and database postgres, trust
// authentication, no TLS.
func (p *postgresServer) dsn() string { return p.srv.DSN() }

// pid is the postmaster's process id: its backends are its children.
func (p *postgresServer) pid() int { return p.srv.Pid() }

// logPath is the file the server logs to.
func (p *postgresServer) logPath() string { return p.srv.LogPath() }

// stop shuts the server down (fast shutdown, a kill past 30 s) and waits for it.
func (p *postgresServer) stop() error { return p.srv.Stop() }

// peerSkipped words err as the reason the River peer is not measured.
func peerSkipped(err error) error {
	return fmt.Errorf("River peer skipped: %w", err)
}
