package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// pprofSource is added to each command's main package by a build overlay when the bench
// runs with -cpuprofile: the system's code stays as it is.
const pprofSource = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("BENCH_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
`

// cpuProfile is a CPU profile being taken of one process.
type cpuProfile struct {
	name string
	path string
	done chan struct{} // closed when the profile is written, or failed
	err  error
}

// startCPUProfile asks the pprof server at addr for a CPU profile of d and writes it to
// dir/<name>.pprof in the background.
func startCPUProfile(ctx context.Context, name, addr, dir string, d time.Duration) *cpuProfile {
	p := &cpuProfile{name: name, path: filepath.Join(dir, name+".pprof"), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = fetchProfile(ctx, addr, p.path, d)
	}()
	return p
}

func fetchProfile(ctx context.Context, addr, path string, d time.Duration) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// wait waits until the profile is written.
func (p *cpuProfile) wait() error {
	<-p.done
	if p.err != nil {
		return fmt.Errorf("profiling %s: %w", p.name, p.err)
	}
	return nil
}

// top waits for the profile and returns its top functions as text (go tool pprof -top).
func (p *cpuProfile) top(ctx context.Context, goCmd string, binary string) (string, error) {
	if err := p.wait(); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, goCmd, "tool", "pprof", "-top", "-nodecount=25", binary, p.path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof %s: %w\n%s", p.path, err, out)
	}
	return string(out), nil
}
