// Package pgtemp runs a throwaway PostgreSQL server for the bench's River peer and its
// test: Debian's server binaries (installed with apt-get when missing), a new cluster in a
// directory of the caller's, one server listening on a free loopback port with trust
// authentication, stopped and forgotten afterwards. Nothing of it is meant to outlive the
// run that started it.
//
// Run as root, which initdb and postgres refuse, both are run as the postgres system user
// that the Debian package creates, and the data directory is that user's.
package pgtemp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrUnavailable is wrapped by the error of Ensure and Start when PostgreSQL cannot be
// had on this machine: what uses it is skipped, with the error's message as the reason.
var ErrUnavailable = errors.New("PostgreSQL unavailable")

// binRoot holds one directory per major version of Debian's PostgreSQL server packages.
const binRoot = "/usr/lib/postgresql"

const (
	// readyTimeout bounds the wait for a started server to accept connections.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds a fast shutdown; the server is killed once it has passed.
	stopTimeout = 30 * time.Second
	// installTimeout bounds each apt-get run.
	installTimeout = 10 * time.Minute
	// maxSocketPath is the longest path of a unix socket (sun_path less its NUL).
	maxSocketPath = 107
)

// Ensure returns the directory of Debian's PostgreSQL server binaries (initdb, postgres),
// the highest major version installed. If there is none it installs the postgresql
// package with apt-get (after an apt-get update if the first attempt fails). Its error
// wraps ErrUnavailable and says why the server cannot be had.
func Ensure(ctx context.Context) (binDir string, err error) {
	if dir, ok := installed(); ok {
		return dir, nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("%w: no %s/*/bin/initdb and no apt-get to install Debian's postgresql package", ErrUnavailable, binRoot)
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w: no %s/*/bin/initdb, and installing Debian's postgresql package needs root", ErrUnavailable, binRoot)
	}
	installErr := aptGet(ctx, "install", "-y", "--no-install-recommends", "postgresql")
	if installErr != nil {
		// The package lists may be missing or stale: refresh them and try once more.
		if err := aptGet(ctx, "update"); err != nil {
			return "", fmt.Errorf("%w: apt-get install postgresql failed (%v), and so did apt-get update (%v)", ErrUnavailable, installErr, err)
		}
		installErr = aptGet(ctx, "install", "-y", "--no-install-recommends", "postgresql")
	}
	if dir, ok := installed(); ok {
		return dir, nil
	}
	if installErr != nil {
		return "", fmt.Errorf("%w: apt-get install postgresql failed: %v", ErrUnavailable, installErr)
	}
	return "", fmt.Errorf("%w: apt-get installed postgresql but no %s/*/bin/initdb appeared", ErrUnavailable, binRoot)
}

// installed returns the bin directory of the highest major version with an initdb.
func installed() (string, bool) {
	paths, _ := filepath.Glob(filepath.Join(binRoot, "*", "bin", "initdb"))
	best, bestVersion := "", -1
	for _, p := range paths {
		// /usr/lib/postgresql/<major>/bin/initdb; majors before 10 had a minor (9.6).
		major, _, _ := strings.Cut(filepath.Base(filepath.Dir(filepath.Dir(p))), ".")
		v, err := strconv.Atoi(major)
		if err == nil && v > bestVersion {
			best, bestVersion = filepath.Dir(p), v
		}
	}
	return best, best != ""
}

// aptGet runs apt-get non-interactively; its error carries the end of the output.
func aptGet(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, tail(out, 400))
	}
	return nil
}

// Options configures the server Start runs.
type Options struct {
	// SyncCommit is the synchronous_commit setting: on, a commit returns once its WAL is
	// flushed to disk; off, it returns at once and the WAL writer flushes shortly after.
	// fsync stays on either way.
	SyncCommit bool
}

// Server is a running PostgreSQL server started by Start.
type Server struct {
	dataDir string
	logPath string
	port    int
	cmd     *exec.Cmd
	done    chan struct{} // closed once the server process has exited
	waitErr error         // its exit status, once done is closed
}

// Start creates a cluster in dir/pgdata (dir is created if missing; an existing pgdata is
// used as it is) and runs a server on it: listening on 127.0.0.1 on a free port, its unix
// socket in the data directory (none if that path is too long for one), trust
// authentication, user and database postgres, fsync on, synchronous_commit as opts say,
// max_connections 200, shared_buffers 128MB. Its log is dir/postgres.log. Start returns
// once the server accepts connections; Stop stops it. An error that wraps ErrUnavailable
// means PostgreSQL cannot be installed or run here.
func Start(ctx context.Context, dir string, opts Options) (*Server, error) {
	binDir, err := Ensure(ctx)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	owner, err := serverOwner()
	if err != nil {
		return nil, err
	}
	s := &Server{dataDir: filepath.Join(dir, "pgdata"), logPath: filepath.Join(dir, "postgres.log"), done: make(chan struct{})}
	if err := owner.prepare(s.dataDir); err != nil {
		return nil, fmt.Errorf("pgtemp: preparing %s for the postgres user: %w", s.dataDir, err)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := initdb(ctx, binDir, s.dataDir, owner); err != nil {
			return nil, err
		}
	}
	if s.port, err = freePort(); err != nil {
		return nil, err
	}
	if err := s.run(binDir, owner, opts); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// initdb creates the cluster: superuser postgres, trust authentication for local and
// loopback connections, UTF-8 with the C locale. Its files are not synced: the cluster is
// thrown away after the run, and the server syncs what it writes itself.
func initdb(ctx context.Context, binDir, dataDir string, owner *owner) error {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Env = serverEnv()
	cmd.Dir = dataDir
	owner.apply(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: initdb: %v: %s", ErrUnavailable, err, tail(out, 600))
	}
	return nil
}

// run starts the postgres process with its settings on the command line, which override
// postgresql.conf.
func (s *Server) run(binDir string, owner *owner, opts Options) error {
	syncCommit := "off"
	if opts.SyncCommit {
		syncCommit = "on"
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	// The unix socket goes in the data directory, or nowhere if that path is too long
	// for a socket's (107 bytes on Linux): clients use TCP.
	socketDir := s.dataDir
	if len(socketDir)+len("/.s.PGSQL.65535") > maxSocketPath {
		socketDir = ""
	}
	cmd := exec.Command(filepath.Join(binDir, "postgres"),
		"-D", s.dataDir,
		"-p", strconv.Itoa(s.port),
		"-c", "unix_socket_directories="+socketDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=on",
		"-c", "synchronous_commit="+syncCommit,
		"-c", "max_connections=200",
		"-c", "shared_buffers=128MB",
	)
	cmd.Env = serverEnv()
	cmd.Dir = s.dataDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	owner.apply(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: starting postgres: %v", ErrUnavailable, err)
	}
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	return nil
}

// waitReady pings the server until it answers, it exits, or readyTimeout passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		pingCtx, pingCancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(pingCtx, s.DSN())
		if err == nil {
			err = conn.Ping(pingCtx)
			_ = conn.Close(pingCtx)
		}
		pingCancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("%w: postgres exited at start (%v): %s", ErrUnavailable, s.waitErr, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%w: postgres did not accept connections within %s (%v): %s", ErrUnavailable, readyTimeout, err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DSN is the connection string of the server's postgres database as user postgres.
func (s *Server) DSN() string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(s.port) + "/postgres?sslmode=disable"
}

// Port is the TCP port the server listens on, on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// LogPath is the file the server logs to.
func (s *Server) LogPath() string { return s.logPath }

// Pid is the server's (the postmaster's) process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop shuts the server down fast (SIGINT: open transactions are rolled back, sessions
// ended, the WAL flushed) and waits for it, killing it if it has not stopped within
// stopTimeout. The data directory is left to the caller.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("pgtemp: postgres did not stop within %s and was killed", stopTimeout)
	}
}

// logTail is the end of the server's log, for an error message.
func (s *Server) logTail() string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(data, 800)
}

// serverEnv is the environment of initdb and postgres: this process's, without the libpq
// variables that would point them elsewhere, with the C locale.
func serverEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=")
	})
	return append(env, "LANG=C", "LC_ALL=C")
}

// owner is the user the server runs as: the postgres system user when this process is
// root, else (nil) this process's own user.
type owner struct {
	uid, gid int
}

// serverOwner returns the postgres user when running as root, nil otherwise.
func serverOwner() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: running as root, and there is no postgres user to run the server as (Debian's postgresql package creates it): %v", ErrUnavailable, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtemp: postgres user: %w", err)
	}
	return &owner{uid: uid, gid: gid}, nil
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last max bytes of out, trimmed, for an error message.
func tail(out []byte, max int) string {
	out = bytes.TrimSpace(out)
	if len(out) > max {
		out = append([]byte("..."), out[len(out)-max:]...)
	}
	return string(out)
}
