package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDevKeyRoundTrip(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "devstack", "auth")
	k, err := LoadOrCreateDevKey(dir)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "jwks.json"), k.JWKSPath())

	fi, err := os.Stat(filepath.Join(dir, "signing-key.pem"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	v, err := NewVerifier(t.Context(), Config{Issuer: testIssuer, Audience: testAudience, JWKSFile: k.JWKSPath()}, testLogger(t))
	require.NoError(t, err)

	now := time.Now()
	tok, err := k.Sign(testIssuer, testAudience, "merch_dev", []string{"charges:write", "charges:read"}, time.Hour, now)
	require.NoError(t, err)
	p, err := v.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, Principal{Merchant: "merch_dev", Scopes: []string{"charges:write", "charges:read"}}, p)

	tok, err = k.Sign(testIssuer, testAudience, "merch_dev", nil, time.Hour, now)
	require.NoError(t, err)
	p, err = v.Verify(tok)
	require.NoError(t, err)
	require.Empty(t, p.Scopes)

	// Expired, and for someone else.
	tok, err = k.Sign(testIssuer, testAudience, "merch_dev", nil, time.Minute, now.Add(-2*time.Minute))
	require.NoError(t, err)
	_, err = v.Verify(tok)
	require.ErrorContains(t, err, "expired")
	tok, err = k.Sign(testIssuer, "another-api", "merch_dev", nil, time.Hour, now)
	require.NoError(t, err)
	_, err = v.Verify(tok)
	require.ErrorContains(t, err, "wrong audience")

	// Loading again gives the same key and leaves jwks.json alone, so the
	// running verifier keeps accepting its tokens.
	jwksBefore, err := os.Stat(k.JWKSPath())
	require.NoError(t, err)
	k2, err := LoadOrCreateDevKey(dir)
	require.NoError(t, err)
	require.Equal(t, k.kid, k2.kid)
	require.True(t, k.priv.Equal(k2.priv))
	jwksAfter, err := os.Stat(k.JWKSPath())
	require.NoError(t, err)
	require.True(t, sameVersion(jwksBefore, jwksAfter))
	tok, err = k2.Sign(testIssuer, testAudience, "merch_dev", nil, time.Hour, now)
	require.NoError(t, err)
	_, err = v.Verify(tok)
	require.NoError(t, err)

	// A lost jwks.json is rewritten from the key.
	require.NoError(t, os.Remove(k.JWKSPath()))
	_, err = LoadOrCreateDevKey(dir)
	require.NoError(t, err)
	v2, err := NewVerifier(t.Context(), Config{Issuer: testIssuer, Audience: testAudience, JWKSFile: k.JWKSPath()}, testLogger(t))
	require.NoError(t, err)
	_, err = v2.Verify(tok)
	require.NoError(t, err)
}

func TestDevKeyConcurrentCreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 8
	kids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, err := LoadOrCreateDevKey(dir)
			if err == nil {
				kids[i] = k.kid
			}
		})
	}
	wg.Wait()
	for _, kid := range kids {
		require.NotEmpty(t, kid)
		require.Equal(t, kids[0], kid)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary files left behind")
}

func TestDevKeyErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "signing-key.pem"), []byte("not a key"), 0o600))
	_, err := LoadOrCreateDevKey(dir)
	require.ErrorContains(t, err, "PRIVATE KEY")

	k, err := LoadOrCreateDevKey(t.TempDir())
	require.NoError(t, err)
	now := time.Now()
	for name, sign := range map[string]func() (string, error){
		"no issuer":      func() (string, error) { return k.Sign("", testAudience, "m", nil, time.Hour, now) },
		"no audience":    func() (string, error) { return k.Sign(testIssuer, "", "m", nil, time.Hour, now) },
		"no merchant":    func() (string, error) { return k.Sign(testIssuer, testAudience, "", nil, time.Hour, now) },
		"bad merchant":   func() (string, error) { return k.Sign(testIssuer, testAudience, "a\nb", nil, time.Hour, now) },
		"zero ttl":       func() (string, error) { return k.Sign(testIssuer, testAudience, "m", nil, 0, now) },
		"scope w/ space": func() (string, error) { return k.Sign(testIssuer, testAudience, "m", []string{"a b"}, time.Hour, now) },
		"empty scope":    func() (string, error) { return k.Sign(testIssuer, testAudience, "m", []string{""}, time.Hour, now) },
	} {
		tok, err := sign()
		require.Error(t, err, name)
		require.Empty(t, tok, name)
	}
}

// TestThumbprint checks the kid against RFC 8037 appendix A.3.
func TestThumbprint(t *testing.T) {
	t.Parallel()
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	require.NoError(t, err)
	require.Equal(t, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", thumbprint(ed25519.PublicKey(x)))
}
