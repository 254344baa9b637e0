//go:build !linux

package pgtemp

import (
	"os"
	"os/exec"
)

// apply has nothing to add outside Linux, where the server runs as this process's user.
func (o *owner) apply(*exec.Cmd) {}

// prepare creates dataDir with the mode postgres requires.
func (o *owner) prepare(dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dataDir, 0o700)
}
