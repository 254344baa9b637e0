package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/devstack"
)

// apiFlags are the flags of the commands that call the running API (listen, trigger):
// where it is, and which merchant's token to sign with the devstack's key.
type apiFlags struct {
	configPath, api, merchant *string
}

// addAPIFlags adds the flags to fs; vars is the environment ($BILLING_API).
func addAPIFlags(fs *flag.FlagSet, vars map[string]string, merchantUsage string) apiFlags {
	apiDefault := vars["BILLING_API"]
	if apiDefault == "" {
		apiDefault = "http://localhost:8080"
	}
	return apiFlags{
		configPath: fs.String("config", "", "YAML configuration file (default $BILLING_CONFIG)"),
		api:        fs.String("api", apiDefault, "base URL of the billing API (default $BILLING_API)"),
		merchant:   fs.String("merchant", devstack.DefaultMerchant, merchantUsage),
	}
}

// token signs an hour's token of the merchant with scopes, with the key the devstack
// keeps in its data directory (the one its API trusts), as `devstack token` does.
func (f apiFlags) token(environ []string, scopes []string) (string, error) {
	cfg, err := config.Load(config.Devstack, *f.configPath, environ)
	if err != nil {
		return "", err
	}
	key, err := auth.LoadOrCreateDevKey(filepath.Join(cfg.DataDir, devstack.KeyDir))
	if err != nil {
		return "", err
	}
	tok, err := key.Sign(cfg.AuthIssuer, cfg.AuthAudience, *f.merchant, scopes, time.Hour, time.Now())
	if err != nil {
		return "", errors.Join(errors.New("signing token"), err)
	}
	return tok, nil
}

// runTrigger is `devstack trigger EVENT`: it makes the API at --api emit EVENT for a new
// charge of the merchant and prints what it did on out.
func runTrigger(ctx context.Context, args, environ []string, out io.Writer) error {
	fs := flag.NewFlagSet("trigger", flag.ContinueOnError)
	af := addAPIFlags(fs, envMap(environ), "the merchant whose charge it is")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: devstack trigger EVENT [--api URL] [--merchant M]\n\nEVENT is one of %s\n",
			strings.Join(devstack.TriggerEvents(), ", "))
		fs.PrintDefaults()
	}
	// The event comes first, like stripe trigger's; flags may follow it.
	var event string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		event, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if event == "" && fs.NArg() > 0 {
		event = fs.Arg(0)
	}
	if event == "" {
		return fmt.Errorf("which event? one of %s", strings.Join(devstack.TriggerEvents(), ", "))
	}
	if err := devstack.CheckTriggerEvent(event); err != nil {
		return err // before a key is made for nothing
	}
	tok, err := af.token(environ, devstack.TriggerScopes)
	if err != nil {
		return err
	}
	tr := &devstack.Trigger{APIURL: *af.api, Token: tok, HTTPClient: &http.Client{}}
	_, err = tr.Run(ctx, event, out)
	return err
}
