// Package natstest starts real embedded NATS servers with JetStream: one per test with New,
// or one for a long-running process (the devstack) with StartServer.
package natstest

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout is how long StartServer waits for the server to accept clients.
const readyTimeout = 10 * time.Second

// ServerOptions configures StartServer.
type ServerOptions struct {
	// Host is the interface the client port listens on. Defaults to "127.0.0.1".
	Host string
	// Port is the client port; -1 picks a free one. 0 means the NATS default, 4222.
	Port int
	// StoreDir is the directory of the JetStream file store. Required.
	StoreDir string
	// SyncAlways makes the store fsync every write before acknowledging it, as production's
	// `sync_interval: always` does (docs/design.md, "Production topology"). Slower; off by default.
	SyncAlways bool
	// ServerName names the server in logs and JetStream metadata. Defaults to the server's
	// generated id; a server of a cluster needs a name of its own.
	ServerName string
	// Cluster, when its Port is set, makes the server one of a JetStream cluster.
	Cluster ClusterOptions
}

// ClusterOptions places a server in a cluster.
type ClusterOptions struct {
	// Name is the cluster's, the same on every server of it.
	Name string
	// Host and Port are where the server listens for the routes of the others.
	Host string
	Port int
	// Routes are the cluster addresses (host:port) of the other servers.
	Routes []string
}

// StartServer starts an embedded nats-server with JetStream on a file store and waits until
// it accepts clients. The caller owns the server: Shutdown and WaitForShutdown it when done.
// ClientURL gives the address clients connect to.
func StartServer(opts ServerOptions) (*server.Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("natstest: StoreDir is required")
	}
	sopts := &server.Options{
		ServerName: opts.ServerName,
		Host:       cmp.Or(opts.Host, "127.0.0.1"),
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		SyncAlways: opts.SyncAlways,
		NoLog:      true,
		NoSigs:     true,
	}
	if c := opts.Cluster; c.Port != 0 {
		sopts.Cluster = server.ClusterOpts{Name: c.Name, Host: cmp.Or(c.Host, "127.0.0.1"), Port: c.Port}
		for _, r := range c.Routes {
			u, err := url.Parse("nats-route://" + r)
			if err != nil {
				return nil, fmt.Errorf("natstest: route %q: %w", r, err)
			}
			sopts.Routes = append(sopts.Routes, u)
		}
	}
	s, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natstest: creating server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(readyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("natstest: server not ready for connections after %s", readyTimeout)
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, errors.New("natstest: JetStream did not start")
	}
	return s, nil
}

// New starts a server for one test, stored in t.TempDir() on a random port, shuts it down
// when the test ends, and returns its client URL.
func New(t testing.TB) string {
	t.Helper()
	s := Start(t)
	return s.ClientURL()
}

// Start is New returning the server itself, for tests that stop or restart it.
func Start(t testing.TB) *server.Server {
	t.Helper()
	s, err := StartServer(ServerOptions{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}
