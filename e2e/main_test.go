// Package e2e tests the billing system end to end: it builds the real binaries and runs
// them as separate processes (the devstack's NATS and store, an ingest, several workers)
// against a payment processor served by the test, kills and restarts them while load runs,
// and checks what the merchants and the processor saw afterwards (docs/design.md, "Testing").
//
// Environment:
//
//	E2E_RACE=1       build the binaries with -race (slower)
//	E2E_LOG_DIR=dir  keep the processes' logs in dir instead of a temporary directory
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// binDir holds the binaries TestMain built: devstack, ingest, worker.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "billing-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		// A build failure is a failure, never a skip.
		fmt.Fprintln(os.Stderr, "e2e: building the binaries:", err)
		return 1
	}
	binDir = dir
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines leaked:", err)
			return 1
		}
	}
	return code
}

// build compiles ./cmd/... of the module into dir, with -race when E2E_RACE=1.
func build(dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if os.Getenv("E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/...")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), root, err, out)
	}
	for _, name := range []string{"devstack", "ingest", "worker"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("go build made no %s: %w", name, err)
		}
	}
	return nil
}

// moduleRoot is the directory of the module's go.mod: from `go env GOMOD`, else found by
// walking up from the working directory.
func moduleRoot() (string, error) {
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if gomod := string(bytes.TrimSpace(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
