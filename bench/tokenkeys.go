package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/golang-jwt/jwt/v5"
)

// ed25519Keys reads the Ed25519 public keys of a JWKS file, by kid.
func ed25519Keys(path string) (map[string]ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []struct {
			KTY string `json:"kty"`
			CRV string `json:"crv"`
			X   string `json:"x"`
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.KTY != "OKP" || k.CRV != "Ed25519" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s: key %q: bad x", path, k.KID)
		}
		keys[k.KID] = ed25519.PublicKey(x)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no Ed25519 key", path)
	}
	return keys, nil
}

// tokenVerifier checks EdDSA tokens the way the ingest must at least: signature by a
// known kid, issuer, audience and expiry; then reads the sub claim.
type tokenVerifier struct {
	parser *jwt.Parser
	keys   map[string]ed25519.PublicKey
}

func newTokenVerifier(jwksPath, issuer, audience string) (*tokenVerifier, error) {
	keys, err := ed25519Keys(jwksPath)
	if err != nil {
		return nil, err
	}
	return &tokenVerifier{
		keys: keys,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(issuer), jwt.WithAudience(audience), jwt.WithExpirationRequired(),
		),
	}, nil
}

var errUnknownKID = errors.New("unknown kid")

// verify returns the token's subject.
func (v *tokenVerifier) verify(token string) (string, error) {
	var claims jwt.RegisteredClaims
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, ok := v.keys[kid]
		if !ok {
			return nil, errUnknownKID
		}
		return key, nil
	})
	if err != nil {
		return "", err
	}
	return claims.Subject, nil
}
