// Package certfile serves a TLS certificate from a certificate file and a key file and
// takes up new versions of them without a restart: certificates are renewed in place
// (cert-manager rewrites a Kubernetes Secret, whose mounted files then change), and a
// process that read them once at start would serve the old one until it expired.
package certfile

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// checkEvery is how often the files are stat'ed for changes, at most: on a handshake,
// never in a goroutine of their own.
const checkEvery = 5 * time.Second

// Pair is a certificate and its key, reloaded when either file changes.
type Pair struct {
	certFile, keyFile string
	now               func() time.Time
	logger            *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	loaded  [2]os.FileInfo // the versions of the files cert came from
	checked time.Time
}

// Load reads the pair once; an error names the file at fault. now is the clock of the
// checks.
func Load(certFile, keyFile string, now func() time.Time, logger *slog.Logger) (*Pair, error) {
	p := &Pair{certFile: certFile, keyFile: keyFile, now: now, logger: logger}
	if err := p.load(); err != nil {
		return nil, err
	}
	p.checked = now()
	return p, nil
}

// GetCertificate is for tls.Config.GetCertificate: the current certificate, first
// reloaded if a file changed since the last check, checkEvery or more ago. A reload that
// fails (a file half written, a key that does not match) keeps the certificate served so
// far and is tried again at the next check.
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := p.now(); now.Sub(p.checked) >= checkEvery {
		p.checked = now
		if p.changed() {
			if err := p.load(); err != nil {
				p.logger.Warn("reloading the TLS certificate failed; serving the one loaded before", "error", err)
			} else {
				p.logger.Info("TLS certificate reloaded", "cert_file", p.certFile)
			}
		}
	}
	return p.cert, nil
}

// changed reports whether either file differs from the version loaded.
func (p *Pair) changed() bool {
	for i, path := range []string{p.certFile, p.keyFile} {
		fi, err := os.Stat(path)
		if err != nil || !sameVersion(fi, p.loaded[i]) {
			return true
		}
	}
	return false
}

// sameVersion reports whether a and b describe the same file with the same size and
// modification time: a file replaced by rename (or a Kubernetes volume's symlink swap)
// is a new file even if its time was kept.
func sameVersion(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// load reads both files and, if they make a pair, replaces the certificate. The files
// are stat'ed before they are read, so a change during the read is seen at the next check.
func (p *Pair) load() error {
	var loaded [2]os.FileInfo
	for i, path := range []string{p.certFile, p.keyFile} {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		loaded[i] = fi
	}
	cert, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", p.certFile, p.keyFile, err)
	}
	p.cert, p.loaded = &cert, loaded
	return nil
}
