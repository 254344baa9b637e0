package auth

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

const (
	// fileCheckEvery is how often the JWKS file is stat'ed for changes.
	fileCheckEvery = 2 * time.Second
	// fileUnknownKIDEvery is how often an unknown kid may force a re-read.
	fileUnknownKIDEvery = 5 * time.Second
	// maxJWKSFileSize bounds what is read from the file.
	maxJWKSFileSize = 1 << 20
)

// fileKeys serves keys from a JWKS file and reloads it when it changes. No
// goroutine: checks happen on the lookups themselves, rate-limited.
type fileKeys struct {
	path   string
	now    func() time.Time
	logger *slog.Logger

	mu      sync.Mutex
	keys    keyfunc.Keyfunc
	loaded  os.FileInfo // the version of the file the keys came from
	checked time.Time   // last stat
	forced  time.Time   // last re-read caused by an unknown kid
}

func newFileKeys(path string, now func() time.Time, logger *slog.Logger) (*fileKeys, error) {
	s := &fileKeys{path: path, now: now, logger: logger}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.checked = now()
	return s, nil
}

// Keyfunc returns the key for t's kid from the current file contents.
func (s *fileKeys) Keyfunc(t *jwt.Token) (any, error) {
	key, err := s.current().Keyfunc(t)
	if errors.Is(err, jwkset.ErrKeyNotFound) && s.reloadForUnknownKID() {
		key, err = s.current().Keyfunc(t)
	}
	return key, err
}

// current returns the keys, first reloading them if the file changed since
// the last check and that check is more than fileCheckEvery ago.
func (s *fileKeys) current() keyfunc.Keyfunc {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.Sub(s.checked) < fileCheckEvery {
		return s.keys
	}
	s.checked = now
	fi, err := os.Stat(s.path)
	if err != nil {
		s.logger.Warn("auth: checking JWKS file failed; keeping the keys loaded before", "path", s.path, "error", err)
		return s.keys
	}
	if !sameVersion(fi, s.loaded) {
		s.reloadLocked()
	}
	return s.keys
}

// reloadForUnknownKID re-reads the file, unless an unknown kid already did
// less than fileUnknownKIDEvery ago, so that tokens with made-up kids cannot
// make every request read the file. It reports whether it re-read.
func (s *fileKeys) reloadForUnknownKID() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !s.forced.IsZero() && now.Sub(s.forced) < fileUnknownKIDEvery {
		return false
	}
	s.forced, s.checked = now, now
	return s.reloadLocked()
}

func (s *fileKeys) reloadLocked() bool {
	prev := s.loaded
	if err := s.load(); err != nil {
		s.logger.Warn("auth: reloading JWKS file failed; keeping the keys loaded before", "path", s.path, "error", err)
		return false
	}
	if !sameVersion(s.loaded, prev) {
		s.logger.Info("auth: JWKS file reloaded", "path", s.path)
	}
	return true
}

// sameVersion reports whether a and b describe the same file with the same
// size and modification time. A file replaced by rename is a new file even
// if its time was preserved.
func sameVersion(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// load reads and parses the file and, if that works, replaces the keys.
// Called with mu held, or before s is shared.
func (s *fileKeys) load() error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSFileSize+1))
	if err != nil {
		return err
	}
	if len(data) > maxJWKSFileSize {
		return fmt.Errorf("larger than %d bytes", maxJWKSFileSize)
	}
	keys, n, err := parseJWKS(data, s.logger)
	if err != nil {
		// Leave s.loaded as it was: the next check sees the change again and
		// retries, in case we read the file halfway through a write.
		return err
	}
	if n == 0 {
		s.logger.Warn("auth: JWKS file has no usable keys", "path", s.path)
	}
	s.keys, s.loaded = keys, fi
	return nil
}
