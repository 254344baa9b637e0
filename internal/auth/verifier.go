// Package auth verifies bearer tokens: token in, principal out.
//
// A [Verifier] accepts JWTs signed with EdDSA, ES256 or RS256 by a key from a
// JWKS (a file or a URL, selected by the token's kid) and, only when a shared
// secret is configured, HS256. See docs/api.md, Authentication.
package auth

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

const (
	// MaxTokenLen is the longest token Verify parses; longer ones are
	// rejected before any decoding.
	MaxTokenLen = 8 << 10
	// MaxSubjectLen is the longest sub claim (in bytes) accepted as a merchant.
	MaxSubjectLen = 255
	// MinHS256SecretLen is the shortest HS256 secret accepted (RFC 7518
	// section 3.2: a key at least as long as the hash output).
	MinHS256SecretLen = 32

	defaultLeeway      = 30 * time.Second
	defaultHTTPTimeout = 10 * time.Second
	minRSABits         = 2048
)

// Config configures a [Verifier]. At least one key source is required: a
// JWKS (JWKSFile or JWKSURL, not both) or HS256Secret.
type Config struct {
	// Issuer is the required value of the iss claim. Required.
	Issuer string
	// Audience must be the aud claim or one of its entries. Required.
	Audience string
	// JWKSFile is the path of a JWKS JSON file. The file's identity, size and
	// modification time are checked at most every few seconds and it is
	// re-read when they change; a token with an unknown kid also triggers a
	// re-read, at most once every few seconds. If a re-read fails the keys
	// loaded before stay in use.
	JWKSFile string
	// JWKSURL is the http(s) address of a JWKS. It is fetched at start,
	// refreshed every 5 minutes, and refetched when a token has an unknown
	// kid (at most once a minute).
	JWKSURL string
	// HS256Secret enables HS256 tokens when non-empty; it must then be at
	// least MinHS256SecretLen bytes.
	HS256Secret []byte
	// Leeway is the clock skew allowed on exp, nbf and iat. Defaults to 30s.
	Leeway time.Duration
	// HTTPClient fetches JWKSURL. Defaults to a client with a 10s timeout.
	HTTPClient *http.Client
	// NowFunc returns the current time. Defaults to time.Now.
	NowFunc func() time.Time
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	parser *jwt.Parser
	secret []byte
	// jwks returns the verification key a JWKS holds for a token's kid, or an
	// error; nil when no JWKS is configured.
	jwks jwt.Keyfunc
	now  func() time.Time
	// verified remembers tokens that passed, so that a merchant's steady stream
	// of requests with one token costs one signature check (EdDSA and ES256 take
	// 60-80 µs, a fifth of the ingest's CPU per charge) rather than one each.
	verified verifiedCache
}

// NewVerifier validates cfg and loads the JWKS, if any. It fails when there
// is no key source or when the JWKS file or URL cannot be loaded. ctx bounds
// the goroutine that refreshes a JWKSURL; logger receives refresh and reload
// failures (nil discards them).
func NewVerifier(ctx context.Context, cfg Config, logger *slog.Logger) (*Verifier, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Leeway = cmp.Or(cfg.Leeway, defaultLeeway)
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	v := &Verifier{secret: cfg.HS256Secret, now: cfg.NowFunc}
	switch {
	case cfg.JWKSFile != "":
		keys, err := newFileKeys(cfg.JWKSFile, cfg.NowFunc, logger)
		if err != nil {
			return nil, fmt.Errorf("auth: loading JWKSFile: %w", err)
		}
		v.jwks = keys.Keyfunc
	case cfg.JWKSURL != "":
		kf, err := newURLKeyfunc(ctx, cfg.JWKSURL, cfg.HTTPClient, logger)
		if err != nil {
			return nil, fmt.Errorf("auth: loading JWKSURL: %w", err)
		}
		v.jwks = kf
	}

	var methods []string
	if v.jwks != nil {
		methods = append(methods, jwt.SigningMethodEdDSA.Alg(), jwt.SigningMethodES256.Alg(), jwt.SigningMethodRS256.Alg())
	}
	if len(v.secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.NowFunc),
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

func (c Config) validate() error {
	switch {
	case c.Issuer == "":
		return errors.New("auth: Issuer is required")
	case c.Audience == "":
		return errors.New("auth: Audience is required")
	case c.JWKSFile != "" && c.JWKSURL != "":
		return errors.New("auth: set JWKSFile or JWKSURL, not both")
	case c.JWKSFile == "" && c.JWKSURL == "" && len(c.HS256Secret) == 0:
		return errors.New("auth: no key source: set JWKSFile, JWKSURL or HS256Secret")
	case len(c.HS256Secret) > 0 && len(c.HS256Secret) < MinHS256SecretLen:
		return fmt.Errorf("auth: HS256Secret must be at least %d bytes", MinHS256SecretLen)
	case c.Leeway < 0:
		return errors.New("auth: Leeway must not be negative")
	}
	return nil
}

// claims are the claims Verify reads. Claims of the wrong JSON type (a
// numeric sub, an array scope, a quoted exp) make the token malformed.
type claims struct {
	jwt.RegisteredClaims
	Scope string `json:"scope,omitempty"`
}

// claimTypes holds the raw values of the claims whose JSON type decoding
// claims does not check by itself: jwt.NumericDate takes a number in a string
// ("1999999999") and a null leaves it unset, as a null does a string. Its
// tags are those of claims, so encoding/json gives each field exactly the
// value it gives the field of claims (the last of the keys matching the name
// case-insensitively). aud needs no check: jwt.ClaimStrings takes a string or
// an array of strings and rejects anything else, and a null aud is missing.
type claimTypes struct {
	Exp   json.RawMessage `json:"exp"`
	Nbf   json.RawMessage `json:"nbf"`
	Iat   json.RawMessage `json:"iat"`
	Sub   json.RawMessage `json:"sub"`
	Scope json.RawMessage `json:"scope"`
}

// UnmarshalJSON decodes claims, requiring exp, nbf and iat to be JSON
// numbers and sub and scope to be strings when present.
func (c *claims) UnmarshalJSON(data []byte) error {
	var raw claimTypes
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	for _, v := range []json.RawMessage{raw.Exp, raw.Nbf, raw.Iat} {
		if v != nil && !isJSONType(v, "-0123456789") {
			return jwt.ErrInvalidType
		}
	}
	for _, v := range []json.RawMessage{raw.Sub, raw.Scope} {
		if v != nil && !isJSONType(v, `"`) {
			return jwt.ErrInvalidType
		}
	}
	type plain claims // without this method
	return json.Unmarshal(data, (*plain)(c))
}

// isJSONType reports whether the JSON value v (valid, as encoding/json
// delivered it) starts with one of the bytes in first: "-0123456789" for a
// number, `"` for a string.
func isJSONType(v json.RawMessage, first string) bool {
	v = bytes.TrimLeft(v, " \t\r\n")
	return len(v) > 0 && strings.IndexByte(first, v[0]) >= 0
}

// Verify checks token and returns the principal it speaks for. Every failure
// wraps [ErrInvalidToken].
func (v *Verifier) Verify(token string) (Principal, error) {
	if token == "" {
		return Principal{}, invalid("empty")
	}
	if len(token) > MaxTokenLen {
		return Principal{}, invalid("too long")
	}
	now := v.now()
	if p, ok := v.verified.get(token, now); ok {
		return p, nil
	}
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		return Principal{}, invalid(reason(err))
	}
	if !validSubject(c.Subject) {
		return Principal{}, invalid("sub claim missing or not a valid merchant")
	}
	p := Principal{Merchant: c.Subject}
	if scopes := strings.Fields(c.Scope); len(scopes) > 0 {
		p.Scopes = scopes
	}
	// Remembered until it expires (without the leeway), and for verifiedTTL at most.
	until := now.Add(verifiedTTL)
	if c.ExpiresAt != nil && c.ExpiresAt.Before(until) {
		until = c.ExpiresAt.Time
	}
	v.verified.put(token, p, until)
	return p, nil
}

// verifiedTTL bounds how long a verified token is remembered: no longer than the JWKS
// file is trusted without a re-check, so a key removed from the set stops being honoured
// as soon as the removal is read. Under load it still saves all but one signature check
// per token and period.
const verifiedTTL = fileCheckEvery

// maxVerified bounds the tokens remembered; past it the cache starts over.
const maxVerified = 10_000

// verifiedCache maps the SHA-256 of a token that verified to its principal and the
// time it may be trusted until. Keys are hashes so that tokens are not kept in memory.
type verifiedCache struct {
	mu      sync.Mutex
	entries map[[32]byte]verifiedEntry
}

type verifiedEntry struct {
	p     Principal
	until time.Time
}

func (c *verifiedCache) get(token string, now time.Time) (Principal, bool) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.until) {
		return Principal{}, false
	}
	return e.p, true
}

func (c *verifiedCache) put(token string, p Principal, until time.Time) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxVerified {
		c.entries = make(map[[32]byte]verifiedEntry)
	}
	c.entries[key] = verifiedEntry{p: p, until: until}
}

func invalid(why string) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, why)
}

// Reasons the key lookup refuses a token. Their texts are fixed so that no
// part of the token (kid, alg) ends up in an error message or a log line.
var (
	errCrit            = errors.New("crit header not supported")
	errNoSecret        = errors.New("HS256 not enabled")
	errNoJWKS          = errors.New("no JWKS configured")
	errMissingKID      = errors.New("kid header missing")
	errUnknownKID      = errors.New("unknown kid")
	errKeyLookup       = errors.New("no usable key for kid (JWK alg or use mismatch, or JWKS refetch rate-limited)")
	errKeyTypeMismatch = errors.New("key type does not match alg")
)

// key is the jwt.Keyfunc. The parser has already restricted the alg to the
// allowed set. HS256 is verified with the configured secret only, never with
// anything from the JWKS; every other alg needs a kid naming a JWKS key of the
// matching type, so an RS256 public key can never serve as an HMAC secret.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 4.1.11: extensions we don't understand must be rejected.
		return nil, errCrit
	}
	alg := t.Method.Alg()
	if alg == jwt.SigningMethodHS256.Alg() {
		if len(v.secret) == 0 {
			return nil, errNoSecret
		}
		return v.secret, nil
	}
	if v.jwks == nil {
		return nil, errNoJWKS
	}
	if kid, _ := t.Header["kid"].(string); kid == "" {
		// Without a kid keyfunc would offer every key in the set.
		return nil, errMissingKID
	}
	key, err := v.jwks(t)
	switch {
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return nil, errUnknownKID
	case err != nil:
		return nil, errKeyLookup
	}
	if !keyMatchesAlg(key, alg) {
		return nil, errKeyTypeMismatch
	}
	return key, nil
}

func keyMatchesAlg(key any, alg string) bool {
	switch alg {
	case jwt.SigningMethodEdDSA.Alg():
		k, ok := key.(ed25519.PublicKey)
		return ok && len(k) == ed25519.PublicKeySize
	case jwt.SigningMethodES256.Alg():
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256()
	case jwt.SigningMethodRS256.Alg():
		k, ok := key.(*rsa.PublicKey)
		return ok && k.N != nil && k.N.BitLen() >= minRSABits
	}
	return false
}

// reasons maps parse errors to fixed texts, most specific first. The parser's
// own messages can quote the header's alg or JSON fragments, so they are not
// passed on.
var reasons = []struct {
	err  error
	text string
}{
	{errCrit, errCrit.Error()},
	{errNoSecret, errNoSecret.Error()},
	{errNoJWKS, errNoJWKS.Error()},
	{errMissingKID, errMissingKID.Error()},
	{errUnknownKID, errUnknownKID.Error()},
	{errKeyLookup, errKeyLookup.Error()},
	{errKeyTypeMismatch, errKeyTypeMismatch.Error()},
	{jwt.ErrTokenMalformed, "malformed"},
	{jwt.ErrTokenSignatureInvalid, "alg not allowed or signature invalid"},
	{jwt.ErrTokenUnverifiable, "alg missing or unknown"},
	{jwt.ErrTokenRequiredClaimMissing, "required claim missing (exp, iss or aud)"},
	{jwt.ErrTokenExpired, "expired"},
	{jwt.ErrTokenNotValidYet, "not valid yet"},
	{jwt.ErrTokenUsedBeforeIssued, "issued in the future"},
	{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
	{jwt.ErrTokenInvalidAudience, "wrong audience"},
	{jwt.ErrInvalidType, "claim of the wrong type"},
	{jwt.ErrTokenInvalidClaims, "invalid claims"},
}

func reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.text
		}
	}
	return "rejected"
}

// validSubject reports whether sub can be a merchant: 1 to MaxSubjectLen
// bytes of valid UTF-8, every rune printable and not a space, so that no two
// merchants look alike in a log line.
func validSubject(sub string) bool {
	if sub == "" || len(sub) > MaxSubjectLen || !utf8.ValidString(sub) {
		return false
	}
	for _, r := range sub {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
