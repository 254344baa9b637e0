package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "billing-api"
	testMerchant = "merch_42"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef-hs256")
	testOctKey = []byte("a symmetric key published in the JWKS")
)

// testKeys are generated once: RSA generation is slow, and the keys only
// need to be distinct from each other.
type testKeys struct {
	ed, ed2 ed25519.PrivateKey
	ec      *ecdsa.PrivateKey
	ec384   *ecdsa.PrivateKey
	rsa     *rsa.PrivateKey
	rsa1024 *rsa.PrivateKey
}

var sharedKeys = sync.OnceValue(func() testKeys {
	var k testKeys
	var err error
	must := func() {
		if err != nil {
			panic(err)
		}
	}
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must()
	_, k.ed2, err = ed25519.GenerateKey(rand.Reader)
	must()
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must()
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must()
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must()
	k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024)
	must()
	return k
})

// jwk is one entry of a test JWKS.
type jwk struct {
	kid string
	key any // public key, or []byte for an oct key
	alg jwkset.ALG
	use jwkset.USE
}

// standardJWKS is the set most tests verify against.
func standardJWKS(k testKeys) []jwk {
	return []jwk{
		{kid: "ed", key: k.ed.Public(), alg: jwkset.AlgEdDSA, use: jwkset.UseSig},
		{kid: "ec", key: &k.ec.PublicKey, alg: jwkset.AlgES256, use: jwkset.UseSig},
		{kid: "ec-noalg", key: &k.ec.PublicKey},
		{kid: "ec384", key: &k.ec384.PublicKey},
		{kid: "rsa", key: &k.rsa.PublicKey, alg: jwkset.AlgRS256, use: jwkset.UseSig},
		{kid: "rsa-noalg", key: &k.rsa.PublicKey},
		{kid: "rsa-ps", key: &k.rsa.PublicKey, alg: jwkset.AlgPS256},
		{kid: "rsa-enc", key: &k.rsa.PublicKey, use: jwkset.UseEnc},
		{kid: "rsa1024", key: &k.rsa1024.PublicKey, alg: jwkset.AlgRS256},
		{kid: "oct", key: testOctKey},
	}
}

func jwksJSON(t testing.TB, keys ...jwk) []byte {
	t.Helper()
	var set jwkset.JWKSMarshal
	set.Keys = []jwkset.JWKMarshal{}
	for _, k := range keys {
		_, symmetric := k.key.([]byte)
		j, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: k.alg, USE: k.use},
			Marshal:  jwkset.JWKMarshalOptions{Private: symmetric},
		})
		require.NoError(t, err, "kid %s", k.kid)
		set.Keys = append(set.Keys, j.Marshal())
	}
	data, err := json.Marshal(set)
	require.NoError(t, err)
	return data
}

// writeJWKS replaces path atomically, as a deployment would.
func writeJWKS(t testing.TB, path string, keys ...jwk) {
	t.Helper()
	require.NoError(t, writeFileAtomic(path, jwksJSON(t, keys...), 0o644))
}

func claimsAt(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":   testIssuer,
		"aud":   testAudience,
		"sub":   testMerchant,
		"iat":   now.Unix(),
		"exp":   now.Add(5 * time.Minute).Unix(),
		"scope": "charges:read charges:write",
	}
}

// with returns a copy of c with the given claims set; a nil value deletes.
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := make(jwt.MapClaims, len(c))
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func testLogger(t testing.TB) *slog.Logger {
	if tt, ok := t.(*testing.T); ok {
		return slog.New(slog.NewTextHandler(tt.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fakeClock is a NowFunc the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// bundle is what most tests need: keys, a JWKS file and verifiers on it.
type bundle struct {
	keys     testKeys
	now      time.Time
	jwksPath string
	jwksOnly *Verifier // JWKS file, no secret
	both     *Verifier // JWKS file and HS256 secret
	hsOnly   *Verifier // HS256 secret only
}

func setup(t *testing.T) bundle {
	t.Helper()
	b := bundle{keys: sharedKeys(), now: time.Now()}
	b.jwksPath = filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, b.jwksPath, standardJWKS(b.keys)...)
	var err error
	b.jwksOnly, err = NewVerifier(t.Context(), Config{Issuer: testIssuer, Audience: testAudience, JWKSFile: b.jwksPath}, testLogger(t))
	require.NoError(t, err)
	b.both, err = NewVerifier(t.Context(), Config{Issuer: testIssuer, Audience: testAudience, JWKSFile: b.jwksPath, HS256Secret: testSecret}, testLogger(t))
	require.NoError(t, err)
	b.hsOnly, err = NewVerifier(t.Context(), Config{Issuer: testIssuer, Audience: testAudience, HS256Secret: testSecret}, testLogger(t))
	require.NoError(t, err)
	return b
}
