package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// binaries are the built commands of the system under test.
type binaries struct {
	dir string
}

func (b binaries) path(name string) string { return filepath.Join(b.dir, name) }

// build compiles ./cmd/... and the River peer (./bench/peer) of the module at root into
// dir with the go command goCmd. With
// profile, every command also serves net/http/pprof on $BENCH_PPROF_ADDR (pprof.go).
func build(ctx context.Context, goCmd, root, dir string, profile bool) (binaries, time.Duration, error) {
	start := time.Now()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return binaries{}, 0, err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if profile {
		overlay, err := writePprofOverlay(root, dir)
		if err != nil {
			return binaries{}, 0, err
		}
		args = append(args, "-overlay", overlay)
	}
	args = append(args, "./cmd/...", "./bench/peer")
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return binaries{}, 0, fmt.Errorf("%s %s: %w\n%s", goCmd, strings.Join(args, " "), err, out)
	}
	return binaries{dir: dir}, time.Since(start), nil
}

// writePprofOverlay writes the pprof file and a go build overlay that adds it to each
// command's main package, without touching the source tree.
func writePprofOverlay(root, dir string) (string, error) {
	src := filepath.Join(dir, "bench_pprof.go")
	if err := os.WriteFile(src, []byte(pprofSource), 0o644); err != nil {
		return "", err
	}
	replace := map[string]string{}
	for _, name := range []string{"devstack", "ingest", "worker"} {
		replace[filepath.Join(root, "cmd", name, "zz_bench_pprof.go")] = src
	}
	data, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		return "", err
	}
	overlay := filepath.Join(dir, "overlay.json")
	return overlay, os.WriteFile(overlay, data, 0o644)
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(ctx context.Context, goCmd string) (string, error) {
	out, err := exec.CommandContext(ctx, goCmd, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("%s env GOMOD: %w", goCmd, err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module: run the bench from the repository")
	}
	return filepath.Dir(gomod), nil
}
