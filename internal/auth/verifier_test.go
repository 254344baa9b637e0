package auth

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	b := setup(t)
	k, now := b.keys, b.now
	c := claimsAt(now)
	wantDefault := &Principal{Merchant: testMerchant, Scopes: []string{"charges:read", "charges:write"}}

	rsaPubDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	require.NoError(t, err)
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPubDER})

	jwksOnly := func(b bundle) *Verifier { return b.jwksOnly }
	both := func(b bundle) *Verifier { return b.both }
	hsOnly := func(b bundle) *Verifier { return b.hsOnly }

	tests := []struct {
		name   string
		v      func(bundle) *Verifier
		token  func(t *testing.T) string
		want   *Principal // nil: must be rejected
		reason string     // part of the error text, when rejected
	}{
		// Accepted.
		{name: "EdDSA", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", c) }},
		{name: "ES256", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodES256, k.ec, "ec", c) }},
		{name: "ES256 JWK without alg", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodES256, k.ec, "ec-noalg", c) }},
		{name: "RS256", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodRS256, k.rsa, "rsa", c) }},
		{name: "RS256 JWK without alg", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-noalg", c) }},
		{name: "HS256 with secret and JWKS", v: both, want: wantDefault,
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS256, testSecret, "", c) }},
		{name: "HS256 with secret only", v: hsOnly, want: wantDefault,
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS256, testSecret, "", c) }},
		{name: "EdDSA with both sources", v: both, want: wantDefault,
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", c) }},
		{name: "expired within leeway", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "exp", now.Add(-10*time.Second).Unix()))
			}},
		{name: "nbf in the future within leeway", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "nbf", now.Add(10*time.Second).Unix()))
			}},
		{name: "aud array containing ours", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "aud", []string{"other", testAudience}))
			}},
		{name: "no scope claim", v: jwksOnly, want: &Principal{Merchant: testMerchant},
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "scope", nil)) }},
		{name: "empty scope claim", v: jwksOnly, want: &Principal{Merchant: testMerchant},
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "scope", "")) }},
		{name: "scope with extra spaces", v: jwksOnly,
			want: &Principal{Merchant: testMerchant, Scopes: []string{"events:read", "webhooks:manage"}},
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "scope", "  events:read   webhooks:manage "))
			}},
		{name: "sub of 255 bytes", v: jwksOnly, want: &Principal{Merchant: strings.Repeat("m", 255), Scopes: wantDefault.Scopes},
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", strings.Repeat("m", 255)))
			}},

		// Algorithms.
		{name: "alg none", v: both, reason: "alg not allowed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ed", c)
			}},
		{name: "alg none hand-made", v: both, reason: "alg not allowed",
			token: func(t *testing.T) string {
				return b64(`{"alg":"none","typ":"JWT"}`) + "." + b64json(t, c) + "."
			}},
		{name: "alg missing", v: both, reason: "alg missing",
			token: func(t *testing.T) string { return b64(`{"typ":"JWT","kid":"ed"}`) + "." + b64json(t, c) + ".c2ln" }},
		{name: "alg unknown", v: both, reason: "alg missing or unknown",
			token: func(t *testing.T) string { return b64(`{"alg":"XS256","kid":"ed"}`) + "." + b64json(t, c) + ".c2ln" }},
		{name: "HS256 without secret configured", v: jwksOnly, reason: "alg not allowed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS256, testSecret, "", c) }},
		{name: "HS256 wrong secret", v: both, reason: "signature invalid",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), "", c)
			}},
		{name: "HS256 signed with a JWKS oct key, JWKS only", v: jwksOnly, reason: "alg not allowed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS256, testOctKey, "oct", c) }},
		{name: "HS256 signed with a JWKS oct key, with secret", v: both, reason: "signature invalid",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS256, testOctKey, "oct", c) }},
		{name: "HS384", v: both, reason: "alg not allowed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS384, testSecret, "", c) }},
		{name: "HS512", v: both, reason: "alg not allowed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS512, testSecret, "", c) }},
		{name: "RS512", v: both, reason: "alg not allowed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodRS512, k.rsa, "rsa-noalg", c) }},
		{name: "PS256", v: both, reason: "alg not allowed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodPS256, k.rsa, "rsa-ps", c) }},
		{name: "ES384", v: both, reason: "alg not allowed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodES384, k.ec384, "ec384", c) }},

		// RS256/HS256 confusion: an HS256 token whose HMAC key is the RSA
		// public key, pointing at the RSA kid.
		{name: "confusion PEM public key, JWKS only", v: jwksOnly, reason: "alg not allowed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS256, rsaPubPEM, "rsa", c) }},
		{name: "confusion PEM public key, with secret", v: both, reason: "signature invalid",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS256, rsaPubPEM, "rsa", c) }},
		{name: "confusion DER public key, with secret", v: both, reason: "signature invalid",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS256, rsaPubDER, "rsa", c) }},

		// Key selection.
		{name: "unknown kid", v: jwksOnly, reason: "unknown kid",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "nope", c) }},
		{name: "missing kid", v: jwksOnly, reason: "kid header missing",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "", c) }},
		{name: "kid not a string", v: jwksOnly, reason: "kid header missing",
			token: func(t *testing.T) string {
				return signHeader(t, jwt.SigningMethodEdDSA, k.ed, map[string]any{"kid": 7}, c)
			}},
		{name: "ES256 token, kid of an RSA key", v: jwksOnly, reason: "key type does not match alg",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodES256, k.ec, "rsa-noalg", c) }},
		{name: "ES256 token, kid of a P-384 key", v: jwksOnly, reason: "key type does not match alg",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodES256, k.ec, "ec384", c) }},
		{name: "RS256 token, kid of an EC key", v: jwksOnly, reason: "key type does not match alg",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodRS256, k.rsa, "ec-noalg", c) }},
		{name: "EdDSA token, kid of an oct key", v: both, reason: "unknown kid", // skipped when loading the file
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "oct", c) }},
		{name: "RS256 token, JWK alg PS256", v: jwksOnly, reason: "no usable key for kid",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-ps", c) }},
		{name: "ES256 token, JWK alg EdDSA", v: jwksOnly, reason: "no usable key for kid",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodES256, k.ec, "ed", c) }},
		{name: "RS256 token, JWK use enc", v: jwksOnly, reason: "no usable key for kid",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-enc", c) }},
		{name: "RS256 with a 1024-bit key", v: jwksOnly, reason: "key type does not match alg",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodRS256, k.rsa1024, "rsa1024", c) }},
		{name: "signed by another key under a known kid", v: jwksOnly, reason: "signature invalid",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed2, "ed", c) }},
		{name: "claims swapped after signing", v: jwksOnly, reason: "signature invalid",
			token: func(t *testing.T) string {
				parts := strings.Split(sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", c), ".")
				parts[1] = b64json(t, with(c, "sub", "merch_evil"))
				return strings.Join(parts, ".")
			}},
		{name: "crit header", v: jwksOnly, reason: "crit header",
			token: func(t *testing.T) string {
				return signHeader(t, jwt.SigningMethodEdDSA, k.ed, map[string]any{"kid": "ed", "crit": []string{"x-ext"}, "x-ext": true}, c)
			}},

		// Time.
		{name: "expired past leeway", v: jwksOnly, reason: "expired",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "exp", now.Add(-time.Minute).Unix()))
			}},
		{name: "nbf in the future past leeway", v: jwksOnly, reason: "not valid yet",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "nbf", now.Add(time.Minute).Unix()))
			}},
		{name: "missing exp", v: jwksOnly, reason: "required claim missing",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "exp", nil)) }},
		{name: "exp not a number", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "exp", "soon")) }},
		{name: "exp a number in a string", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "exp", strconv.FormatInt(now.Add(5*time.Minute).Unix(), 10)))
			}},
		{name: "exp a number in a string, key in another case", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "exp", nil, "EXP", "1999999999"))
			}},
		{name: "exp with a fraction", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "exp", float64(now.Add(5*time.Minute).Unix())+0.25))
			}},
		{name: "exp null", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "exp", jsonNull))
			}},
		{name: "exp a bool", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "exp", true)) }},
		{name: "nbf a number in a string", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "nbf", strconv.FormatInt(now.Unix(), 10)))
			}},
		{name: "nbf null", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "nbf", jsonNull))
			}},
		{name: "nbf 10 minutes in the future", v: jwksOnly, reason: "not valid yet",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "nbf", now.Add(10*time.Minute).Unix()))
			}},
		{name: "iat a number in a string", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "iat", strconv.FormatInt(now.Unix(), 10)))
			}},
		{name: "iat null", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "iat", jsonNull))
			}},
		{name: "iat 10 minutes in the future", v: jwksOnly, reason: "issued in the future",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "iat", now.Add(10*time.Minute).Unix()))
			}},
		{name: "iat 10 s in the future, within leeway", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "iat", now.Add(10*time.Second).Unix()))
			}},
		{name: "no iat", v: jwksOnly, want: wantDefault,
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "iat", nil)) }},

		// Issuer and audience.
		{name: "wrong iss", v: jwksOnly, reason: "wrong issuer",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "iss", "https://evil.test"))
			}},
		{name: "missing iss", v: jwksOnly, reason: "required claim missing",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "iss", nil)) }},
		{name: "wrong aud", v: jwksOnly, reason: "wrong audience",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "aud", "other")) }},
		{name: "missing aud", v: jwksOnly, reason: "required claim missing",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "aud", nil)) }},
		{name: "aud null", v: jwksOnly, reason: "required claim missing",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "aud", jsonNull))
			}},
		{name: "aud a number", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "aud", 7)) }},
		{name: "aud array with a number", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "aud", []any{testAudience, 7}))
			}},
		{name: "aud an object", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "aud", map[string]string{"aud": testAudience}))
			}},

		// Subject.
		{name: "missing sub", v: jwksOnly, reason: "sub claim",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", nil)) }},
		{name: "empty sub", v: jwksOnly, reason: "sub claim",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", "")) }},
		{name: "sub a number", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", 42)) }},
		{name: "sub an array", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", []string{testMerchant}))
			}},
		{name: "sub null", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", jsonNull))
			}},
		{name: "sub too long", v: jwksOnly, reason: "sub claim",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", strings.Repeat("m", 256)))
			}},
		{name: "sub with newline", v: jwksOnly, reason: "sub claim",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", "merch\nadmin"))
			}},
		{name: "sub with NUL", v: jwksOnly, reason: "sub claim",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", "merch\x00"))
			}},
		{name: "sub with space", v: jwksOnly, reason: "sub claim",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", "merch_42 "))
			}},
		{name: "sub with bidi override", v: jwksOnly, reason: "sub claim",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "sub", "merch\u202e24"))
			}},

		// Scope.
		{name: "scope an array", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "scope", []string{"charges:read"}))
			}},
		{name: "scope a number", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "scope", 1)) }},
		{name: "scope null", v: jwksOnly, reason: "malformed",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "scope", jsonNull))
			}},

		// Garbage.
		{name: "empty", v: both, reason: "empty", token: func(*testing.T) string { return "" }},
		{name: "one segment", v: both, reason: "malformed", token: func(*testing.T) string { return "garbage" }},
		{name: "four segments", v: both, reason: "malformed", token: func(*testing.T) string { return "a.b.c.d" }},
		{name: "empty segments", v: both, reason: "malformed", token: func(*testing.T) string { return ".." }},
		{name: "header not JSON", v: both, reason: "malformed",
			token: func(t *testing.T) string { return b64("{alg") + "." + b64json(t, c) + ".c2ln" }},
		{name: "header not base64", v: both, reason: "malformed",
			token: func(t *testing.T) string { return "!!!." + b64json(t, c) + ".c2ln" }},
		{name: "signature not base64", v: both, reason: "malformed",
			token: func(t *testing.T) string {
				parts := strings.Split(sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", c), ".")
				return parts[0] + "." + parts[1] + ".***"
			}},
		{name: "padded base64", v: both, reason: "malformed",
			token: func(t *testing.T) string {
				parts := strings.Split(sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", c), ".")
				return parts[0] + "=." + parts[1] + "." + parts[2]
			}},
		{name: "Bearer prefix left on", v: both, reason: "malformed",
			token: func(t *testing.T) string { return "Bearer " + sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", c) }},
		{name: "over 8 KiB", v: both, reason: "too long",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "pad", strings.Repeat("x", MaxTokenLen)))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			token := tt.token(t)
			p, err := tt.v(b).Verify(token)
			if tt.want != nil {
				require.NoError(t, err)
				require.Equal(t, *tt.want, p)
				return
			}
			require.ErrorIs(t, err, ErrInvalidToken)
			require.ErrorContains(t, err, tt.reason)
			require.Zero(t, p)
			if len(token) > 8 {
				require.NotContains(t, err.Error(), token)
			}
		})
	}
}

func TestVerifyErrorTextHasNoTokenParts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	kid := "kid-\n-injected-\x1b[31m"
	token := sign(t, jwt.SigningMethodEdDSA, b.keys.ed, kid, claimsAt(b.now))
	_, err := b.jwksOnly.Verify(token)
	require.ErrorIs(t, err, ErrInvalidToken)
	require.NotContains(t, err.Error(), "injected")

	token = b64(`{"alg":"HS256\n-injected-"}`) + "." + b64json(t, claimsAt(b.now)) + ".c2ln"
	_, err = b.both.Verify(token)
	require.ErrorIs(t, err, ErrInvalidToken)
	require.NotContains(t, err.Error(), "injected")
}

func TestPrincipalHasScope(t *testing.T) {
	t.Parallel()
	p := Principal{Merchant: testMerchant, Scopes: []string{"charges:read", "events:read"}}
	require.True(t, p.HasScope("charges:read"))
	require.True(t, p.HasScope("events:read"))
	require.False(t, p.HasScope("charges:write"))
	require.False(t, p.HasScope("charges"))
	require.False(t, p.HasScope(""))
	require.False(t, Principal{}.HasScope("charges:read"))
}

func TestNewVerifierConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "jwks.json")
	writeJWKS(t, good, jwk{kid: "ed", key: sharedKeys().ed.Public(), alg: "EdDSA"})
	notJSON := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(notJSON, []byte("{keys"), 0o644))
	noKeys := filepath.Join(dir, "nokeys.json")
	require.NoError(t, os.WriteFile(noKeys, []byte(`{"other":[]}`), 0o644))
	badKey := filepath.Join(dir, "badkey.json")
	require.NoError(t, os.WriteFile(badKey, []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","kid":"x"}]}`), 0o644))
	dupKID := filepath.Join(dir, "dup.json")
	k := sharedKeys()
	require.NoError(t, os.WriteFile(dupKID, jwksJSON(t, jwk{kid: "a", key: k.ed.Public(), alg: "EdDSA"}, jwk{kid: "a", key: &k.ec.PublicKey}), 0o644))
	unsupported := filepath.Join(dir, "unsupported.json")
	require.NoError(t, os.WriteFile(unsupported, []byte(`{"keys":[{"kty":"OKP","crv":"Ed448","x":"AAAA","kid":"x"}]}`), 0o644))

	failing := newJWKSServer(t, nil)
	failing.status.Store(http.StatusInternalServerError)

	base := Config{Issuer: testIssuer, Audience: testAudience}
	tests := []struct {
		name    string
		cfg     func(Config) Config
		wantErr string // empty: must succeed
	}{
		{"file", func(c Config) Config { c.JWKSFile = good; return c }, ""},
		{"secret", func(c Config) Config { c.HS256Secret = testSecret; return c }, ""},
		{"unsupported key skipped", func(c Config) Config { c.JWKSFile = unsupported; return c }, ""},
		{"no issuer", func(c Config) Config { c.JWKSFile = good; c.Issuer = ""; return c }, "Issuer is required"},
		{"no audience", func(c Config) Config { c.JWKSFile = good; c.Audience = ""; return c }, "Audience is required"},
		{"no key source", func(c Config) Config { return c }, "no key source"},
		{"file and URL", func(c Config) Config { c.JWKSFile = good; c.JWKSURL = "https://x.test/jwks"; return c }, "not both"},
		{"short secret", func(c Config) Config { c.HS256Secret = []byte("short"); return c }, "HS256Secret must be at least"},
		{"negative leeway", func(c Config) Config { c.JWKSFile = good; c.Leeway = -time.Second; return c }, "Leeway"},
		{"missing file", func(c Config) Config { c.JWKSFile = filepath.Join(dir, "missing.json"); return c }, "JWKSFile"},
		{"file not JSON", func(c Config) Config { c.JWKSFile = notJSON; return c }, "JWKSFile"},
		{"file without keys member", func(c Config) Config { c.JWKSFile = noKeys; return c }, `no "keys"`},
		{"file with an invalid key", func(c Config) Config { c.JWKSFile = badKey; return c }, "JWKSFile"},
		{"file with a duplicate kid", func(c Config) Config { c.JWKSFile = dupKID; return c }, "more than once"},
		{"URL not http", func(c Config) Config { c.JWKSURL = "file:///etc/jwks.json"; return c }, "http or https"},
		{"URL failing", func(c Config) Config {
			c.JWKSURL, c.HTTPClient = failing.srv.URL, failing.srv.Client()
			return c
		}, "JWKSURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(t.Context(), tt.cfg(base), testLogger(t))
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NotNil(t, v)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, v)
		})
	}
}

// jsonNull is a claim value that marshals to JSON null (with deletes a nil one).
var jsonNull = json.RawMessage("null")

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func b64json(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(data)
}

func signHeader(t testing.TB, m jwt.SigningMethod, key any, header map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}
