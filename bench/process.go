package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// stopTimeout bounds a graceful stop: SIGTERM, then SIGKILL once it has passed.
const stopTimeout = 40 * time.Second

// pollEvery is the interval between two looks at something we wait for.
const pollEvery = 25 * time.Millisecond

// process is one of the built binaries running as a child, its output going to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited
}

// startProcess runs path with args and exactly env, writing stdout and stderr to logPath.
func startProcess(name, logPath string, env []string, path string, args ...string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the outcome is in cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

// pid is the process id, for /proc.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the process has ended.
func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return fmt.Errorf("%s has exited: %v", p.name, p.cmd.ProcessState)
	}
	return p.cmd.Process.Signal(sig)
}

// stop sends SIGTERM and waits for the exit, killing the process after stopTimeout. A
// paused process is resumed first so that it can see the SIGTERM.
func (p *process) stop() error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM: killed", p.name, stopTimeout)
	}
}

// tail is the last n lines of the log, each cut to 300 characters.
func (p *process) tail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + " …"
		}
	}
	return strings.Join(lines, "\n")
}

// failure describes why waiting on the process failed, with the tail of its log.
func (p *process) failure(what string, err error) error {
	return fmt.Errorf("%s: %s: %w\n--- last lines of %s:\n%s", p.name, what, err, p.logPath, p.tail(20))
}

// waitUntil calls check every pollEvery until it returns nil, the process exits, or the
// timeout passes.
func (p *process) waitUntil(ctx context.Context, what string, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.failure(what, fmt.Errorf("exited (%v); last check: %w", p.cmd.ProcessState, err))
		case <-ctx.Done():
			return p.failure(what, fmt.Errorf("%w; last check: %w", ctx.Err(), err))
		case <-tick.C:
		}
	}
}

// waitTCP waits until addr accepts connections.
func (p *process) waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	return p.waitUntil(ctx, "listening on "+addr, timeout, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// waitOutput waits until the process's log holds text.
func (p *process) waitOutput(ctx context.Context, text string, timeout time.Duration) error {
	return p.waitUntil(ctx, fmt.Sprintf("printing %q", text), timeout, func() error {
		data, err := os.ReadFile(p.logPath)
		if err != nil {
			return err
		}
		if !strings.Contains(string(data), text) {
			return errors.New("not yet")
		}
		return nil
	})
}

// waitReady waits until GET http://adminAddr/readyz answers 200.
func (p *process) waitReady(ctx context.Context, adminAddr string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	return p.waitUntil(ctx, "ready on "+adminAddr, timeout, func() error {
		resp, err := client.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz answered %d", resp.StatusCode)
		}
		return nil
	})
}

// freeAddrs returns n distinct loopback addresses that were free a moment ago: each is
// listened on, all at once so that they differ, then released.
func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	var errs []error
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs, errors.Join(errs...)
}

// baseEnv is this process's environment without any BILLING_* variable, so that the
// children see only the configuration the bench gives them.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BILLING_") {
			env = append(env, kv)
		}
	}
	return env
}
