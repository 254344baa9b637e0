package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// stopTimeout bounds a graceful stop: SIGTERM, then SIGKILL once it has passed.
const stopTimeout = 40 * time.Second

// process is one of the built binaries running as a child process, its stdout and stderr
// going to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited
	killed  bool          // by the test, on purpose
}

// startProcess runs binary (one of binDir) with args and exactly env. The process is
// stopped at the end of the test if it still runs, its log checked for secrets
// (secrets_test.go), and its log tail printed if the test failed.
func startProcess(t *testing.T, logDir, name string, env []string, binary string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(filepath.Join(binDir, binary), args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	require.NoError(t, cmd.Start(), "starting %s", name)
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the outcome is in cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		// Whatever the test did, the process logged none of the secrets in play.
		checkNoSecrets(t, p)
		if t.Failed() {
			t.Logf("--- %s: last lines of %s\n%s", p.name, p.logPath, p.tail(40))
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the exit, killing the process after stopTimeout. It
// returns the exit code (-1 for death by a signal) and how long the exit took.
func (p *process) stop() (int, time.Duration) {
	start := time.Now()
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// kill ends the process with SIGKILL, as a crash would, and waits until it is gone.
func (p *process) kill(t *testing.T) {
	t.Helper()
	p.killed = true
	require.NoError(t, p.cmd.Process.Kill())
	<-p.done
}

// freeze stops the process (SIGSTOP) until thaw lets it go on (SIGCONT): a process that
// stalls past its deadlines (a long pause, a partition) and then carries on as if nothing
// happened.
func (p *process) freeze(t *testing.T) (thaw func()) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGSTOP))
	return func() {
		t.Helper()
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGCONT))
	}
}

// log is everything the process wrote so far.
func (p *process) log() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	return string(data)
}

// tail is the last n lines of the log.
func (p *process) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = l[:400] + " …"
		}
	}
	return strings.Join(lines, "\n")
}

// requireRunning fails the test, with the log tail, if the process has exited.
func (p *process) requireRunning(t *testing.T) {
	t.Helper()
	if p.exited() {
		require.FailNow(t, p.name+" exited", "exit: %v\n%s", p.cmd.ProcessState, p.tail(40))
	}
}

// waitOutput waits until the process has logged text.
func (p *process) waitOutput(t *testing.T, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.log(), text) {
		p.requireRunning(t)
		if time.Now().After(deadline) {
			require.FailNow(t, p.name+" never logged "+text, "%s", p.tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitTCP waits until addr accepts TCP connections.
func (p *process) waitTCP(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p.requireRunning(t)
		conn, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			return
		}
		if time.Now().After(deadline) {
			require.FailNow(t, p.name+" does not listen", "%s: %v after %s\n%s", addr, err, timeout, p.tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits until GET http://adminAddr/readyz answers 200.
func (p *process) waitReady(t *testing.T, adminAddr string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		p.requireRunning(t)
		resp, err := client.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(body.String()))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			require.FailNow(t, p.name+" is not ready", "readyz on %s: %s after %s\n%s", adminAddr, last, timeout, p.tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddrs returns n distinct loopback addresses that were free a moment ago: each is
// listened on, all at once so that they differ, then released. The ports are below the
// kernel's ephemeral range, so no connection's local end (another test's client, a
// restarted server's route) can take one between this check and the bind of the process
// it is for, or while a process is down and about to be started again on it.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	low, high := fixedPortRange()
	for i := range addrs {
		for tries := 0; ; tries++ {
			require.Less(t, tries, 1000, "no free port in [%d, %d)", low, high)
			addr := fmt.Sprintf("127.0.0.1:%d", low+rand.IntN(high-low))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				continue
			}
			lns = append(lns, ln)
			addrs[i] = addr
			break
		}
	}
	return addrs
}

// fixedPortRange is where freeAddrs picks ports: the 10,000 below the start of the
// kernel's ephemeral range (ip_local_port_range, 32768 if unreadable), which nothing
// picks by itself.
func fixedPortRange() (low, high int) {
	high = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 11000 {
				high = v
			}
		}
	}
	return high - 10000, high
}

// baseEnv is the test's environment without any BILLING_* variable, so that the
// processes see only the configuration the test gives them.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BILLING_") {
			env = append(env, kv)
		}
	}
	return env
}

// logDir is where the processes' logs go: E2E_LOG_DIR if set (kept after the test),
// else a temporary directory.
func logDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("E2E_LOG_DIR")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, t.Name()+"-"+time.Now().Format("20060102-150405"))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Logf("logs in %s", dir)
	return dir
}
