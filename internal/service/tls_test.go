package service_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/config"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and returns its files and pool.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "billing-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// With both certificate variables set the API serves HTTPS only, TLS 1.2 or newer, with
// TLS 1.2 limited to ECDHE AEAD suites.
func TestHTTPSOnly(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := writeCert(t)
	s := startSystem(t, func(c *config.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	httpsBase := strings.Replace(s.base, "http://", "https://", 1)
	client := func(maxVersion uint16) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: maxVersion},
		}}
	}
	tok := s.token("merchant_tls")
	req, err := http.NewRequest("GET", httpsBase+"/v1/charges", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)

	resp, err := client(tls.VersionTLS12).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, uint16(tls.VersionTLS12), resp.TLS.Version)

	_, err = client(tls.VersionTLS11).Do(req)
	require.Error(t, err, "TLS 1.1 is refused")

	// TLS 1.2 with CBC suites is refused (Mozilla "intermediate"): the certificate is
	// ECDSA, so these are the CBC suites a client could otherwise negotiate with it.
	suiteClient := func(suite uint16) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}},
		}}
	}
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA} {
		_, err = suiteClient(suite).Do(req)
		require.Error(t, err, "%s is refused", tls.CipherSuiteName(suite))
	}
	for _, suite := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	} {
		resp, err := suiteClient(suite).Do(req)
		require.NoError(t, err, tls.CipherSuiteName(suite))
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, suite, resp.TLS.CipherSuite)
	}
	resp, err = client(tls.VersionTLS13).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, uint16(tls.VersionTLS13), resp.TLS.Version)

	// The dashboard's session cookie is Secure when the ingest serves TLS.
	signIn, err := http.NewRequest("POST", httpsBase+"/dashboard/sign-in", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	require.NoError(t, err)
	signIn.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	noFollow := client(tls.VersionTLS13)
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noFollow.Do(signIn)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Len(t, resp.Cookies(), 1)
	require.True(t, resp.Cookies()[0].Secure)

	// Plain HTTP to the TLS port: net/http refuses it before the API sees it, so the
	// answer is not the API's (s.client would check it against the OpenAPI document).
	plain, err := http.NewRequest("GET", s.base+"/v1/charges", nil)
	require.NoError(t, err)
	plain.Header.Set("Authorization", "Bearer "+tok)
	resp, err = (&http.Client{Timeout: 10 * time.Second}).Do(plain)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}
