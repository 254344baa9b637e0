package service

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// selfSigned returns a certificate for 127.0.0.1 signed by key, and a pool trusting it.
func selfSigned(t *testing.T, key crypto.Signer) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "billing-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// handshake serves cfg on a loopback listener, connects with client and returns the
// negotiated state or the handshake's error.
func handshake(t *testing.T, cfg, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		served <- c.(*tls.Conn).Handshake()
	}()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: client}
	conn, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		<-served
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	state := conn.(*tls.Conn).ConnectionState()
	return state, errors.Join(<-served)
}

// The API's TLS configuration is Mozilla's "intermediate": TLS 1.2 with ECDHE AEAD suites
// only (no CBC, no RSA key exchange), or TLS 1.3; for RSA and ECDSA certificates alike.
func TestAPITLSConfig(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		key     crypto.Signer
		refused []uint16
		allowed []uint16
	}{
		{
			name: "rsa", key: rsaKey,
			refused: []uint16{
				tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, // ECDHE-RSA-AES128-SHA
				tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
				tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
				tls.TLS_RSA_WITH_AES_128_GCM_SHA256, // RSA key exchange
				tls.TLS_RSA_WITH_AES_128_CBC_SHA,
				tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
			},
			allowed: []uint16{
				tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
			},
		},
		{
			name: "ecdsa", key: ecKey,
			refused: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
			},
			allowed: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cert, pool := selfSigned(t, tc.key)
			cfg := apiTLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil })
			tls12 := func(suite uint16) *tls.Config {
				return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}
			}
			for _, suite := range tc.refused {
				_, err := handshake(t, cfg, tls12(suite))
				require.Error(t, err, "%s must be refused", tls.CipherSuiteName(suite))
			}
			for _, suite := range tc.allowed {
				state, err := handshake(t, cfg, tls12(suite))
				require.NoError(t, err, tls.CipherSuiteName(suite))
				require.Equal(t, uint16(tls.VersionTLS12), state.Version)
				require.Equal(t, suite, state.CipherSuite, tls.CipherSuiteName(state.CipherSuite))
			}
			state, err := handshake(t, cfg, &tls.Config{RootCAs: pool})
			require.NoError(t, err)
			require.Equal(t, uint16(tls.VersionTLS13), state.Version, "TLS 1.3 as Go does it")
			_, err = handshake(t, cfg, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
			require.Error(t, err, "TLS 1.1 is refused")
		})
	}
}
