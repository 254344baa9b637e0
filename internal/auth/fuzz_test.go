package auth

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify checks that Verify never panics, that every rejection wraps
// ErrInvalidToken without quoting the token, and that nothing is accepted
// unless the test keys signed it: every token the keys signed is for
// testMerchant, so an accepted token for anyone else would be a forgery.
func FuzzVerify(f *testing.F) {
	k := sharedKeys()
	path := filepath.Join(f.TempDir(), "jwks.json")
	writeJWKS(f, path, standardJWKS(k)...)
	v, err := NewVerifier(f.Context(), Config{
		Issuer: testIssuer, Audience: testAudience, JWKSFile: path, HS256Secret: testSecret,
	}, nil)
	if err != nil {
		f.Fatal(err)
	}

	c := claimsAt(time.Now())
	c["exp"] = time.Now().Add(24 * time.Hour).Unix()
	valid := []string{
		sign(f, jwt.SigningMethodEdDSA, k.ed, "ed", c),
		sign(f, jwt.SigningMethodES256, k.ec, "ec", c),
		sign(f, jwt.SigningMethodRS256, k.rsa, "rsa", c),
		sign(f, jwt.SigningMethodHS256, testSecret, "", c),
	}
	for _, tok := range valid {
		if _, err := v.Verify(tok); err != nil {
			f.Fatalf("seed rejected: %v", err)
		}
		f.Add(tok)
	}
	f.Add(sign(f, jwt.SigningMethodHS256, testOctKey, "oct", c))
	f.Add(sign(f, jwt.SigningMethodES256, k.ec, "rsa-noalg", c))
	f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ed", c))
	f.Add(b64(`{"alg":"EdDSA","kid":"ed"}`) + "." + b64(`{"sub":"x","exp":1e300}`) + ".")
	f.Add(sign(f, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "exp", "1999999999")))
	f.Add(sign(f, jwt.SigningMethodEdDSA, k.ed, "ed", with(c, "iat", time.Now().Add(time.Hour).Unix())))
	f.Add(b64(`{"alg":"EdDSA","kid":"ed"}`) + "." + b64(`{"sub":"x","exp":1.5,"Exp":"2","nbf":null,"iat":true,"scope":["a"],"aud":[1]}`) + ".")
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")

	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(token)
		if err == nil {
			if p.Merchant != testMerchant {
				t.Fatalf("accepted a token for %q", p.Merchant)
			}
			return
		}
		if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("error does not wrap ErrInvalidToken: %v", err)
		}
		if len(token) >= 16 && strings.Contains(err.Error(), token) {
			t.Fatalf("error quotes the token: %v", err)
		}
	})
}
