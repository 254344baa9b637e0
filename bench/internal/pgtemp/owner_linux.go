package pgtemp

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// apply makes cmd run as o (as this process's user when o is nil), in a process group of
// its own, so that the bench stops it in its own order rather than with its terminal's
// signals, and sends it SIGQUIT (immediate shutdown) if this process dies without
// stopping it, so that no server outlives an interrupted run.
func (o *owner) apply(cmd *exec.Cmd) {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if o != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.gid), Groups: []uint32{}}
	}
	cmd.SysProcAttr = attr
}

// prepare creates dataDir (mode 0700, as postgres requires) owned by o, and lets o reach
// it: every directory above it that this process owns gets the search (x) permission for
// others, which lets o pass through without listing it (a temporary directory is 0700).
func (o *owner) prepare(dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return err
	}
	if o == nil {
		return nil
	}
	if err := filepath.WalkDir(dataDir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, o.uid, o.gid)
	}); err != nil {
		return err
	}
	for dir := filepath.Dir(dataDir); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == os.Geteuid() && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
				return err
			}
		}
		if filepath.Dir(dir) == dir {
			return nil
		}
	}
}
