// Package devstack starts the embedded infrastructure of the devstack: a NATS server with
// JetStream and a FerretDB store on SQLite, both under the data directory, and the signing
// key whose tokens the devstack's API accepts.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/ferret"
	"github.com/billing/billing/internal/natstest"
	"github.com/billing/billing/internal/secret"
	"github.com/billing/billing/internal/store"
)

// DefaultMerchant is the merchant of the devstack's ready token.
const DefaultMerchant = "merchant_dev"

// AllScopes are the scopes of the devstack's ready token, the dashboard's operator
// scopes included.
var AllScopes = []string{"charges:write", "charges:read", "events:read", "webhooks:manage", "ops:read", "ops:write"}

// KeyDir is where, under the data directory, the signing key and JWKS live.
const KeyDir = "keys"

// NATSDir and StoreDir are where, under the data directory, NATS and the store keep
// their data.
const (
	NATSDir  = "nats"
	StoreDir = "store"
)

// WebhookKeyFile is the file, under KeyDir, of the key that seals webhook secrets.
const WebhookKeyFile = "webhook-secret.key"

// Infra is the running embedded infrastructure.
type Infra struct {
	NATSURL string
	// Store is the store engine (BILLING_STORE); SQLitePath its database file, for
	// sqlite; MongoURI the embedded MongoDB-compatible server, for mongodb.
	Store      string
	SQLitePath string
	MongoURI   string
	Key        *auth.DevKey
	// WebhookSecretKey is the BILLING_WEBHOOK_SECRET_KEY of the devstack's services.
	WebhookSecretKey string

	nats  *server.Server
	store *ferret.Server
}

// StartInfra starts NATS on cfg.DevNATSAddr and the store on cfg.DevMongoAddr, storing
// under cfg.DataDir, and loads (or creates) the signing key.
func StartInfra(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Infra, error) {
	return startInfra(ctx, cfg, logger, "")
}

// StartInfraBeside is StartInfra for NATS servers that run on their own (the cluster's,
// NodeDir): it starts the store and loads the keys, and gives natsURL, their client URLs,
// to the services.
func StartInfraBeside(ctx context.Context, cfg config.Config, logger *slog.Logger, natsURL string) (*Infra, error) {
	return startInfra(ctx, cfg, logger, natsURL)
}

func startInfra(ctx context.Context, cfg config.Config, logger *slog.Logger, natsURL string) (*Infra, error) {
	host, portStr, err := net.SplitHostPort(cfg.DevNATSAddr)
	if err != nil {
		return nil, fmt.Errorf("BILLING_DEV_NATS_ADDR: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("BILLING_DEV_NATS_ADDR: %w", err)
	}
	// The data are the user's only: the data directory and those under it 0700 (also
	// when they exist, from an older devstack); the store makes its database files 0600.
	for _, dir := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, KeyDir), filepath.Join(cfg.DataDir, NATSDir), filepath.Join(cfg.DataDir, StoreDir)} {
		if err := privateDir(dir); err != nil {
			return nil, fmt.Errorf("BILLING_DATA_DIR: %w", err)
		}
	}
	key, err := auth.LoadOrCreateDevKey(filepath.Join(cfg.DataDir, KeyDir))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	webhookKey, err := loadOrCreateWebhookKey(filepath.Join(cfg.DataDir, KeyDir, WebhookKeyFile))
	if err != nil {
		return nil, fmt.Errorf("webhook secret key: %w", err)
	}
	in := &Infra{NATSURL: natsURL, Store: cfg.Store, Key: key, WebhookSecretKey: webhookKey}
	if natsURL == "" {
		ns, err := natstest.StartServer(natstest.ServerOptions{
			Host: host, Port: port, StoreDir: filepath.Join(cfg.DataDir, NATSDir), ServerName: "devstack",
		})
		if err != nil {
			return nil, fmt.Errorf("starting NATS on %s: %w", cfg.DevNATSAddr, err)
		}
		in.NATSURL, in.nats = ns.ClientURL(), ns
	}
	if err := in.startStore(ctx, cfg, logger); err != nil {
		in.Close()
		return nil, err
	}
	logger.Info("devstack infrastructure up", "nats", in.NATSURL, "store", in.Store, "sqlite_path", in.SQLitePath,
		"mongodb", in.MongoURI, "data_dir", cfg.DataDir)
	return in, nil
}

// SQLiteFile is the database file of the sqlite store, under StoreDir.
const SQLiteFile = "billing.db"

// startStore makes the store ready for the services: for sqlite, the database file
// (BILLING_SQLITE_PATH if set, else under the data directory) with its schema; for
// mongodb, the embedded MongoDB-compatible server on cfg.DevMongoAddr.
func (in *Infra) startStore(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if cfg.Store == store.EngineMongoDB {
		st, err := ferret.Start(ctx, filepath.Join(cfg.DataDir, StoreDir), cfg.DevMongoAddr, logger)
		if err != nil {
			return fmt.Errorf("starting the store on %s: %w", cfg.DevMongoAddr, err)
		}
		in.MongoURI, in.store = st.URI(), st
		return nil
	}
	in.SQLitePath = cfg.SQLitePath
	if in.SQLitePath == config.Defaults(config.Devstack).SQLitePath {
		in.SQLitePath = filepath.Join(cfg.DataDir, StoreDir, SQLiteFile)
	}
	st, err := store.Open(ctx, store.Config{Engine: store.EngineSQLite, SQLitePath: in.SQLitePath}, logger)
	if err != nil {
		return fmt.Errorf("preparing the store at %s: %w", in.SQLitePath, err)
	}
	return st.Close(ctx)
}

// Env is what the services need to find the store, as BILLING_* variables.
func (in *Infra) Env() []string {
	if in.Store == store.EngineMongoDB {
		return []string{"BILLING_STORE=" + in.Store, "BILLING_MONGO_URI=" + in.MongoURI}
	}
	return []string{"BILLING_STORE=" + in.Store, "BILLING_SQLITE_PATH=" + in.SQLitePath}
}

// privateDir creates dir and its missing parents 0700, and makes dir 0700 if it existed.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// loadOrCreateWebhookKey reads the key at path, creating it (0600) if it is missing.
func loadOrCreateWebhookKey(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := secret.NewKey()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
			return "", err
		}
		return key, nil
	}
	if err != nil {
		return "", err
	}
	if err := os.Chmod(path, 0o600); err != nil { // written more open by hand, perhaps
		return "", err
	}
	key := strings.TrimSpace(string(raw))
	if _, err := secret.ParseKey(key); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// Close stops the store and NATS (if it started NATS).
func (i *Infra) Close() {
	if i.store != nil {
		i.store.Close()
	}
	if i.nats != nil {
		i.nats.Shutdown()
		i.nats.WaitForShutdown()
	}
}

// ClusterName is the name of the devstack's NATS cluster.
const ClusterName = "billing"

// Node is one server of the devstack's NATS cluster, as `devstack nats` runs it.
type Node struct {
	// Name is the server's (nats-1, ...); its data are in NodeDir(dataDir, Name).
	Name string
	// ClientAddr and ClusterAddr are its listeners: for clients, for the other servers.
	ClientAddr, ClusterAddr string
	// Routes are the cluster addresses of the other servers.
	Routes []string
}

// NodeDir is where, under the data directory, the cluster's server name keeps its data.
func NodeDir(dataDir, name string) string { return filepath.Join(dataDir, name) }

// ClusterNodes are the n servers of a cluster whose client ports start at clientPort and
// cluster ports at clusterPort, on 127.0.0.1.
func ClusterNodes(n, clientPort, clusterPort int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{
			Name:        fmt.Sprintf("nats-%d", i+1),
			ClientAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort+i)),
			ClusterAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(clusterPort+i)),
		}
	}
	for i := range nodes {
		for j := range nodes {
			if j != i {
				nodes[i].Routes = append(nodes[i].Routes, nodes[j].ClusterAddr)
			}
		}
	}
	return nodes
}

// ClientURLs is the BILLING_NATS_URL of the services of a cluster: every server's.
func ClientURLs(nodes []Node) string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = "nats://" + n.ClientAddr
	}
	return strings.Join(urls, ",")
}

// StartNode starts node, one server of the devstack's cluster (or a server alone, when
// node has no ClusterAddr), in this process: JetStream on a file store under NodeDir with
// every write fsynced before it is acknowledged (sync_interval: always, as in
// production). The caller shuts it down.
func StartNode(dataDir string, node Node) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(node.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("client address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("client address: %w", err)
	}
	opts := natstest.ServerOptions{Host: host, Port: port, SyncAlways: true, ServerName: node.Name}
	if node.ClusterAddr != "" {
		chost, cportStr, err := net.SplitHostPort(node.ClusterAddr)
		if err != nil {
			return nil, fmt.Errorf("cluster address: %w", err)
		}
		cport, err := strconv.Atoi(cportStr)
		if err != nil {
			return nil, fmt.Errorf("cluster address: %w", err)
		}
		opts.Cluster = natstest.ClusterOptions{Name: ClusterName, Host: chost, Port: cport, Routes: node.Routes}
	}
	opts.StoreDir = NodeDir(dataDir, node.Name)
	if err := privateDir(opts.StoreDir); err != nil {
		return nil, err
	}
	return natstest.StartServer(opts)
}
