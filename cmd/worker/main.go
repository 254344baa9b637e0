// Command worker settles queued charges: it runs them through the payment processor,
// records results and events, and publishes the events. Run any number of replicas.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/service"
)

func main() {
	configPath := flag.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	flag.Parse()
	cfg, err := config.Load(config.Worker, *configPath, os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: bad configuration:\n%v\n", err)
		os.Exit(2)
	}
	logger := service.NewLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := service.RunWorker(ctx, cfg, logger); err != nil {
		logger.Error("worker stopped", "error", err)
		os.Exit(1)
	}
	logger.Info("worker stopped")
}
