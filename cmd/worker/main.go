// Command worker settles queued charges: it runs them through the payment processor,
// records results and events, and publishes the events. Run any number of replicas.
//
// `worker reconcile` checks charges, refunds, ledger entries and the processor's records
// against each other, prints one line per disagreement and a summary, records the summary
// in NATS for the dashboard's operator page, and exits 1 if there was any disagreement.
//
// `worker deadletters` lists the messages given up on (poison messages, charges failed
// after their last attempt); `worker deadletters -replay ID[,ID...]` (or `-replay all`)
// publishes them again for the workers, after a fix.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/service"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "reconcile" {
		os.Exit(reconcile(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "deadletters" {
		os.Exit(deadLetters(os.Args[2:]))
	}
	configPath := flag.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	flag.Parse()
	service.TuneGC()
	cfg, err := config.Load(config.Worker, *configPath, os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: bad configuration:\n%v\n", err)
		os.Exit(2)
	}
	logger := service.NewLogger(cfg)
	service.LogStart(logger, "worker", cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := service.RunWorker(ctx, cfg, logger); err != nil {
		logger.Error("worker stopped", "error", err)
		os.Exit(1)
	}
	logger.Info("worker stopped")
}

// reconcile runs `worker reconcile` and returns the exit code: 0 when everything agrees,
// 1 when something disagrees, 2 when the check could not run.
func reconcile(args []string) int {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	askProcessor := fs.Bool("processor", true, "ask the processor again for every answer the logs record (same idempotency keys)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(config.Reconcile, *configPath, os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker reconcile: bad configuration:\n%v\n", err)
		return 2
	}
	logger := service.NewLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := service.Reconcile(ctx, cfg, logger, *askProcessor, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker reconcile: %v\n", err)
		return 2
	}
	if len(rep.Findings) > 0 {
		return 1
	}
	return 0
}

// deadLetters runs `worker deadletters` and returns the exit code: 0 when done, 2 when it
// could not run.
func deadLetters(args []string) int {
	fs := flag.NewFlagSet("deadletters", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)")
	replay := fs.String("replay", "", "comma-separated ids of dead letters to publish again, or \"all\"")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(config.Worker, *configPath, os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker deadletters: bad configuration:\n%v\n", err)
		return 2
	}
	logger := service.NewLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var ids []string
	if *replay != "" {
		ids = strings.Split(*replay, ",")
	}
	if _, err := service.DeadLetters(ctx, cfg, logger, ids, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "worker deadletters: %v\n", err)
		return 2
	}
	return 0
}
