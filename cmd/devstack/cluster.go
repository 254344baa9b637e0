package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/devstack"
	"github.com/billing/billing/internal/service"
)

// natsNode runs one server of the devstack's cluster until SIGINT or SIGTERM.
func natsNode(args []string) error {
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	name := fs.String("name", "", "the server's name, unique in the cluster (its data directory under BILLING_DATA_DIR)")
	listen := fs.String("listen", "", "host:port of the client listener")
	clusterAddr := fs.String("cluster", "", "host:port of the cluster listener")
	routes := fs.String("routes", "", "comma-separated cluster addresses of the other servers")
	configPath := fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *listen == "" {
		return errors.New("--name and --listen are required")
	}
	if (*clusterAddr == "") != (*routes == "") {
		return errors.New("--cluster and --routes go together: both for a server of a cluster, neither for one alone")
	}
	cfg, err := config.Load(config.Devstack, *configPath, os.Environ())
	if err != nil {
		return err
	}
	service.LogStart(service.NewLogger(cfg), "devstack nats "+*name, cfg)
	ctx, stop := signalContext()
	defer stop()
	node := devstack.Node{Name: *name, ClientAddr: *listen, ClusterAddr: *clusterAddr}
	if *routes != "" {
		node.Routes = strings.Split(*routes, ",")
	}
	ns, err := devstack.StartNode(cfg.DataDir, node)
	if err != nil {
		return fmt.Errorf("starting %s: %w", *name, err)
	}
	if *clusterAddr == "" {
		fmt.Printf("%s: nats://%s, alone, data %s\n", *name, *listen, devstack.NodeDir(cfg.DataDir, *name))
	} else {
		fmt.Printf("%s: nats://%s, cluster %s, data %s\n", *name, *listen, *clusterAddr, devstack.NodeDir(cfg.DataDir, *name))
	}
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}

// nodeArgs are the arguments of `devstack nats` that run node.
func nodeArgs(node devstack.Node) []string {
	return []string{"nats", "--name", node.Name, "--listen", node.ClientAddr, "--cluster", node.ClusterAddr,
		"--routes", strings.Join(node.Routes, ",")}
}

// cluster runs the store and the NATS cluster, each server a `devstack nats` child
// process, until SIGINT or SIGTERM, then stops the children. A child that dies (killed
// to try a fault) is not restarted: its command is printed at start.
func cluster(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	n := fs.Int("nodes", 3, "NATS servers (3 or 5)")
	clientPort := fs.Int("client-port", 4231, "client port of the first server; the others follow")
	clusterPort := fs.Int("cluster-port", 6231, "cluster port of the first server; the others follow")
	configPath := fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n != 3 && *n != 5 {
		return fmt.Errorf("--nodes must be 3 or 5, got %d", *n)
	}
	cfg, err := config.Load(config.Devstack, *configPath, os.Environ())
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logger := service.NewLogger(cfg)
	service.LogStart(logger, "devstack cluster", cfg)
	ctx, stop := signalContext()
	defer stop()

	nodes := devstack.ClusterNodes(*n, *clientPort, *clusterPort)
	var children []*exec.Cmd
	defer func() {
		for _, c := range children {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range children {
			_ = c.Wait()
		}
	}()
	var restart []string
	for _, node := range nodes {
		cmd := exec.Command(self, nodeArgs(node)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", node.Name, err)
		}
		children = append(children, cmd)
		restart = append(restart, fmt.Sprintf("  %s (pid %d): %s %s", node.Name, cmd.Process.Pid,
			filepath.Base(self), strings.Join(nodeArgs(node), " ")))
	}
	urls := devstack.ClientURLs(nodes)
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stack, err := devstack.StartInfraBeside(startCtx, cfg, logger, urls)
	if err != nil {
		return err
	}
	defer stack.Close()
	fmt.Printf("NATS:    %d servers, sync_interval: always\n%s\nstore:   %s\nJWKS:    %s\ndata:    %s\n\n"+
		"Services started separately need:\n  export BILLING_NATS_URL=%s BILLING_STREAM_REPLICAS=3 %s\n"+
		"  export BILLING_AUTH_JWKS_FILE=%s\n  export BILLING_WEBHOOK_SECRET_KEY=$(cat %s)\n",
		len(nodes), strings.Join(restart, "\n"), strings.Join(stack.Env(), " "), stack.Key.JWKSPath(), cfg.DataDir,
		urls, strings.Join(stack.Env(), " "), stack.Key.JWKSPath(),
		filepath.Join(cfg.DataDir, devstack.KeyDir, devstack.WebhookKeyFile))
	<-ctx.Done()
	return nil
}
