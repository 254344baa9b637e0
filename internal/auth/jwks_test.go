package auth

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// jwksServer serves whatever JWKS the test stores in body.
type jwksServer struct {
	srv    *httptest.Server
	body   atomic.Pointer[[]byte]
	status atomic.Int32
	hits   atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.body.Store(&body)
	s.status.Store(http.StatusOK)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s.status.Load()))
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func urlVerifier(t *testing.T, s *jwksServer) *Verifier {
	t.Helper()
	v, err := NewVerifier(t.Context(), Config{
		Issuer: testIssuer, Audience: testAudience,
		JWKSURL: s.srv.URL, HTTPClient: s.srv.Client(),
	}, testLogger(t))
	require.NoError(t, err)
	return v
}

func TestVerifierURL(t *testing.T) {
	t.Parallel()
	k := sharedKeys()
	c := claimsAt(time.Now())
	s := newJWKSServer(t, jwksJSON(t, standardJWKS(k)...))
	v := urlVerifier(t, s)
	require.EqualValues(t, 1, s.hits.Load())

	for _, tok := range []string{
		sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", c),
		sign(t, jwt.SigningMethodES256, k.ec, "ec", c),
		sign(t, jwt.SigningMethodRS256, k.rsa, "rsa", c),
	} {
		p, err := v.Verify(tok)
		require.NoError(t, err)
		require.Equal(t, testMerchant, p.Merchant)
	}
	for name, tok := range map[string]string{
		"HS256":             sign(t, jwt.SigningMethodHS256, testSecret, "", c),
		"HS256 with oct":    sign(t, jwt.SigningMethodHS256, testOctKey, "oct", c),
		"EdDSA with oct":    sign(t, jwt.SigningMethodEdDSA, k.ed, "oct", c),
		"confused key type": sign(t, jwt.SigningMethodES256, k.ec, "rsa-noalg", c),
		"JWK alg mismatch":  sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-ps", c),
	} {
		_, err := v.Verify(tok)
		require.ErrorIs(t, err, ErrInvalidToken, name)
	}
	require.EqualValues(t, 1, s.hits.Load(), "known kids need no fetch")
}

func TestVerifierURLRotation(t *testing.T) {
	t.Parallel()
	k := sharedKeys()
	c := claimsAt(time.Now())
	oldKey := jwk{kid: "2024", key: k.ed.Public(), alg: "EdDSA", use: "sig"}
	newKey := jwk{kid: "2025", key: k.ed2.Public(), alg: "EdDSA", use: "sig"}
	s := newJWKSServer(t, jwksJSON(t, oldKey))
	v := urlVerifier(t, s)

	_, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, k.ed, "2024", c))
	require.NoError(t, err)

	// The issuer publishes the new key, then signs with it: the unknown kid
	// makes the verifier refetch.
	body := jwksJSON(t, oldKey, newKey)
	s.body.Store(&body)
	p, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, k.ed2, "2025", c))
	require.NoError(t, err)
	require.Equal(t, testMerchant, p.Merchant)
	require.EqualValues(t, 2, s.hits.Load())

	// Made-up kids don't make every request refetch: within the rate limit
	// they fail at once, without waiting for it.
	start := time.Now()
	_, err = v.Verify(sign(t, jwt.SigningMethodEdDSA, k.ed, "made-up", c))
	require.ErrorIs(t, err, ErrInvalidToken)
	require.Less(t, time.Since(start), 5*time.Second)
	require.EqualValues(t, 2, s.hits.Load())

	// Both keys keep working.
	_, err = v.Verify(sign(t, jwt.SigningMethodEdDSA, k.ed, "2024", c))
	require.NoError(t, err)
	_, err = v.Verify(sign(t, jwt.SigningMethodEdDSA, k.ed2, "2025", c))
	require.NoError(t, err)
}

func TestVerifierURLRefreshFailureKeepsKeys(t *testing.T) {
	t.Parallel()
	k := sharedKeys()
	c := claimsAt(time.Now())
	s := newJWKSServer(t, jwksJSON(t, jwk{kid: "ed", key: k.ed.Public(), alg: "EdDSA"}))
	v := urlVerifier(t, s)

	s.status.Store(http.StatusServiceUnavailable)
	_, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, k.ed2, "new", c))
	require.ErrorContains(t, err, "unknown kid")
	require.EqualValues(t, 2, s.hits.Load())

	_, err = v.Verify(sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", c))
	require.NoError(t, err)
}

func TestVerifierFileReload(t *testing.T) {
	t.Parallel()
	k := sharedKeys()
	clock := &fakeClock{now: time.Now()}
	c := claimsAt(clock.Now())
	keyA := jwk{kid: "a", key: k.ed.Public(), alg: "EdDSA", use: "sig"}
	keyB := jwk{kid: "b", key: &k.ec.PublicKey, alg: "ES256", use: "sig"}
	tokA := sign(t, jwt.SigningMethodEdDSA, k.ed, "a", c)
	tokB := sign(t, jwt.SigningMethodES256, k.ec, "b", c)

	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, keyA)
	v, err := NewVerifier(t.Context(), Config{
		Issuer: testIssuer, Audience: testAudience, JWKSFile: path, NowFunc: clock.Now,
	}, testLogger(t))
	require.NoError(t, err)
	_, err = v.Verify(tokA)
	require.NoError(t, err)
	_, err = v.Verify(tokB)
	require.ErrorContains(t, err, "unknown kid") // this re-read found nothing new

	// A new key: the unknown kid forces a re-read, but the last one was just
	// now, so the key is only seen at the next periodic check.
	writeJWKS(t, path, keyA, keyB)
	_, err = v.Verify(tokB)
	require.ErrorContains(t, err, "unknown kid")
	clock.Advance(fileCheckEvery)
	_, err = v.Verify(tokB)
	require.NoError(t, err)

	// Removing a key takes effect at the next periodic check.
	writeJWKS(t, path, keyB)
	_, err = v.Verify(tokA)
	require.NoError(t, err, "not checked again yet")
	clock.Advance(fileCheckEvery)
	_, err = v.Verify(tokA)
	require.ErrorContains(t, err, "unknown kid")
	_, err = v.Verify(tokB)
	require.NoError(t, err)

	// A broken file leaves the loaded keys in place, and is picked up once
	// fixed.
	require.NoError(t, writeFileAtomic(path, []byte(`{"keys": [`), 0o644))
	clock.Advance(fileCheckEvery)
	_, err = v.Verify(tokB)
	require.NoError(t, err)
	require.NoError(t, os.Remove(path))
	clock.Advance(fileCheckEvery)
	_, err = v.Verify(tokB)
	require.NoError(t, err)

	writeJWKS(t, path, keyA)
	clock.Advance(fileCheckEvery)
	_, err = v.Verify(tokA)
	require.NoError(t, err)
	_, err = v.Verify(tokB)
	require.ErrorContains(t, err, "unknown kid")
}

func TestVerifierFileUnknownKIDReload(t *testing.T) {
	t.Parallel()
	k := sharedKeys()
	clock := &fakeClock{now: time.Now()}
	c := claimsAt(clock.Now())
	keyA := jwk{kid: "a", key: k.ed.Public(), alg: "EdDSA"}
	keyB := jwk{kid: "b", key: k.ed2.Public(), alg: "EdDSA"}

	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, keyA)
	v, err := NewVerifier(t.Context(), Config{
		Issuer: testIssuer, Audience: testAudience, JWKSFile: path, NowFunc: clock.Now,
	}, testLogger(t))
	require.NoError(t, err)

	// A token signed with a key published a moment ago verifies at once,
	// without waiting for the periodic check.
	writeJWKS(t, path, keyA, keyB)
	_, err = v.Verify(sign(t, jwt.SigningMethodEdDSA, k.ed2, "b", c))
	require.NoError(t, err)

	// Forced re-reads are rate-limited: another new key waits for a later
	// check.
	keyC := jwk{kid: "c", key: &k.ec.PublicKey, alg: "ES256"}
	writeJWKS(t, path, keyA, keyB, keyC)
	tokC := sign(t, jwt.SigningMethodES256, k.ec, "c", c)
	_, err = v.Verify(tokC)
	require.ErrorContains(t, err, "unknown kid")
	clock.Advance(fileUnknownKIDEvery)
	_, err = v.Verify(tokC)
	require.NoError(t, err)
}

// A remembered token is still checked for expiry: past exp and the leeway it fails, as
// an unremembered one would.
func TestVerifiedTokensExpire(t *testing.T) {
	t.Parallel()
	k := sharedKeys()
	clock := &fakeClock{now: time.Now()}
	c := with(claimsAt(clock.Now()), "exp", clock.Now().Add(time.Second).Unix())
	tok := sign(t, jwt.SigningMethodEdDSA, k.ed, "a", c)
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, jwk{kid: "a", key: k.ed.Public(), alg: "EdDSA", use: "sig"})
	v, err := NewVerifier(t.Context(), Config{Issuer: testIssuer, Audience: testAudience, JWKSFile: path, NowFunc: clock.Now}, testLogger(t))
	require.NoError(t, err)
	for range 3 {
		_, err = v.Verify(tok)
		require.NoError(t, err)
	}
	clock.Advance(40 * time.Second)
	_, err = v.Verify(tok)
	require.ErrorContains(t, err, "expired")
	// A token differing by one character is checked in full, not taken from memory.
	_, err = v.Verify(tok[:len(tok)-2] + "AA")
	require.Error(t, err)
}
