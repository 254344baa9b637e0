package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	devKeyFile  = "signing-key.pem"
	devJWKSFile = "jwks.json"
)

// DevKey is an Ed25519 signing key for local development: the devstack mints
// tokens with it that a Verifier configured on [DevKey.JWKSPath] accepts. It
// is not meant for production, where tokens come from an identity provider.
type DevKey struct {
	priv     ed25519.PrivateKey
	kid      string
	jwksPath string
}

// LoadOrCreateDevKey loads dir/signing-key.pem (PKCS #8, mode 0600), creating
// dir and the key if missing, and writes the public key to dir/jwks.json
// (kid the RFC 7638 thumbprint, alg EdDSA, use sig). Concurrent callers on the
// same dir end up with the same key.
func LoadOrCreateDevKey(dir string) (*DevKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: creating dev key directory: %w", err)
	}
	keyPath := filepath.Join(dir, devKeyFile)
	priv, err := readDevKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		priv, err = createDevKey(keyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: dev key %s: %w", keyPath, err)
	}

	pub := priv.Public().(ed25519.PublicKey)
	k := &DevKey{
		priv:     priv,
		kid:      thumbprint(pub),
		jwksPath: filepath.Join(dir, devJWKSFile),
	}
	jwks, err := json.MarshalIndent(map[string][]devJWK{"keys": {{
		KTY: "OKP", CRV: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub),
		KID: k.kid, ALG: "EdDSA", USE: "sig",
	}}}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("auth: encoding dev JWKS: %w", err)
	}
	jwks = append(jwks, '\n')
	// Rewriting an unchanged file would only make running Verifiers reload it.
	if old, err := os.ReadFile(k.jwksPath); err != nil || !bytes.Equal(old, jwks) {
		if err := writeFileAtomic(k.jwksPath, jwks, 0o644); err != nil {
			return nil, fmt.Errorf("auth: writing dev JWKS: %w", err)
		}
	}
	return k, nil
}

// thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url) of an
// Ed25519 public key: the hash of its required members in lexicographic
// order, without white space (RFC 8037 section 2).
func thumbprint(pub ed25519.PublicKey) string {
	x := base64.RawURLEncoding.EncodeToString(pub)
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

type devJWK struct {
	KTY string `json:"kty"`
	CRV string `json:"crv"`
	X   string `json:"x"`
	KID string `json:"kid"`
	ALG string `json:"alg"`
	USE string `json:"use"`
}

func readDevKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want Ed25519", key)
	}
	return priv, nil
}

// createDevKey writes a new key to a temporary file and links it into place,
// which fails if another process got there first; then that key is used.
func createDevKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	tmp, err := writeTemp(filepath.Dir(path), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return readDevKey(path)
	} else if err != nil {
		return nil, err
	}
	return priv, nil
}

// writeFileAtomic replaces path with data so that readers see the old or the
// new content, never a part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(filepath.Dir(path), data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func writeTemp(dir string, data []byte, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// JWKSPath is the JWKS file holding the public key, for [Config.JWKSFile].
func (k *DevKey) JWKSPath() string { return k.jwksPath }

// Sign returns an EdDSA token with a kid header and the claims iss, aud, sub
// (merchant), scope (scopes joined by spaces, omitted when empty), iat (now)
// and exp (now+ttl).
func (k *DevKey) Sign(issuer, audience, merchant string, scopes []string, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case issuer == "" || audience == "":
		return "", errors.New("auth: signing dev token: issuer and audience are required")
	case !validSubject(merchant):
		return "", errors.New("auth: signing dev token: merchant is not a valid sub")
	case ttl <= 0:
		return "", errors.New("auth: signing dev token: ttl must be positive")
	}
	for _, s := range scopes {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return "", fmt.Errorf("auth: signing dev token: invalid scope %q", s)
		}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Audience:  jwt.ClaimStrings{audience},
			Subject:   merchant,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Scope: strings.Join(scopes, " "),
	})
	t.Header["kid"] = k.kid
	s, err := t.SignedString(k.priv)
	if err != nil {
		return "", fmt.Errorf("auth: signing dev token: %w", err)
	}
	return s, nil
}
