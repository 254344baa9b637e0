// Command ingest serves the merchants' API: it authenticates, validates, enforces
// idempotency and puts each accepted charge on the queue. Configuration: docs/api.md.
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
	service.TuneGC()
	cfg, err := config.Load(config.Ingest, *configPath, os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "ingest: bad configuration:\n%v\n", err)
		os.Exit(2)
	}
	logger := service.NewLogger(cfg)
	service.LogStart(logger, "ingest", cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := service.RunIngest(ctx, cfg, logger, nil); err != nil {
		logger.Error("ingest stopped", "error", err)
		os.Exit(1)
	}
	logger.Info("ingest stopped")
}
