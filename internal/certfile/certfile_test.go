package certfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writePair writes a self-signed certificate with serial number serial and its key to
// certFile and keyFile, each replaced by rename as a Kubernetes volume or cert-manager
// would.
func writePair(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "billing-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	replace(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	replace(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// serial returns the serial number of the certificate p serves now.
func serial(t *testing.T, p *Pair) int64 {
	t.Helper()
	cert, err := p.GetCertificate(nil)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	return leaf.SerialNumber.Int64()
}

// A renewed certificate is served within checkEvery of being written, without a restart;
// a broken or missing renewal keeps the last good certificate in service.
func TestReloadsRenewedCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePair(t, certFile, keyFile, 1)
	now := time.Now()
	clock := func() time.Time { return now }
	p, err := Load(certFile, keyFile, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.Equal(t, int64(1), serial(t, p))

	writePair(t, certFile, keyFile, 2)
	require.Equal(t, int64(1), serial(t, p), "not checked again before checkEvery")
	now = now.Add(checkEvery)
	require.Equal(t, int64(2), serial(t, p), "the renewed certificate")

	replace(t, keyFile, []byte("not a key"))
	now = now.Add(checkEvery)
	require.Equal(t, int64(2), serial(t, p), "a broken renewal keeps the last good pair")
	require.NoError(t, os.Remove(certFile))
	now = now.Add(checkEvery)
	require.Equal(t, int64(2), serial(t, p), "so do missing files")

	writePair(t, certFile, keyFile, 3)
	now = now.Add(checkEvery)
	require.Equal(t, int64(3), serial(t, p), "and the next good one is taken up")
}

// At start, a pair that does not load is an error that names the files.
func TestLoadRefusesABrokenPair(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_, err := Load(certFile, keyFile, time.Now, slog.Default())
	require.ErrorContains(t, err, "tls.crt")
	writePair(t, certFile, keyFile, 1)
	replace(t, keyFile, []byte("not a key"))
	_, err = Load(certFile, keyFile, time.Now, slog.Default())
	require.ErrorContains(t, err, "tls.key")
}
