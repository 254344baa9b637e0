// Package webhooksig signs and verifies webhook deliveries the way the billing API sends
// them, following the Standard Webhooks specification: the headers webhook-id,
// webhook-timestamp and webhook-signature, where the signature is
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)) and key is the
// base64-decoded part of the endpoint secret after "whsec_". During a secret rotation a
// delivery carries several signatures separated by spaces; any one that matches is enough.
//
// Merchants use Verify in their webhook handlers; it compares in constant time and
// rejects deliveries whose timestamp is too far from now, against replay.
package webhooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every endpoint secret.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a delivery's timestamp may be from now.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify, matched with errors.Is.
var (
	ErrMissingHeaders   = errors.New("webhooksig: missing webhook headers")
	ErrInvalidTimestamp = errors.New("webhooksig: timestamp is malformed or outside the tolerance")
	ErrNoMatch          = errors.New("webhooksig: no signature matches")
	ErrInvalidSecret    = errors.New("webhooksig: secret is not whsec_ followed by base64")
)

// DecodeSecret returns the signing key of a "whsec_…" secret.
func DecodeSecret(secret string) ([]byte, error) {
	raw, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, ErrInvalidSecret
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) == 0 {
		return nil, ErrInvalidSecret
	}
	return key, nil
}

// Sign returns the "v1,<signature>" of one delivery under key.
func Sign(key []byte, id string, timestamp time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SignatureHeader is the webhook-signature value for a delivery signed by every key.
func SignatureHeader(keys [][]byte, id string, timestamp time.Time, body []byte) string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, timestamp, body)
	}
	return strings.Join(sigs, " ")
}

// Verifier checks deliveries against one or more secrets (several while the merchant
// rotates its own copy).
type Verifier struct {
	keys      [][]byte
	tolerance time.Duration
	now       func() time.Time
}

// NewVerifier returns a Verifier for the given "whsec_…" secrets with DefaultTolerance.
func NewVerifier(secrets ...string) (*Verifier, error) {
	v := &Verifier{tolerance: DefaultTolerance, now: time.Now}
	for _, s := range secrets {
		k, err := DecodeSecret(s)
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, k)
	}
	if len(v.keys) == 0 {
		return nil, ErrInvalidSecret
	}
	return v, nil
}

// WithTolerance returns a copy of v that accepts timestamps within d of now.
func (v *Verifier) WithTolerance(d time.Duration) *Verifier {
	c := *v
	c.tolerance = d
	return &c
}

// WithClock returns a copy of v that takes the time from now (for tests).
func (v *Verifier) WithClock(now func() time.Time) *Verifier {
	c := *v
	c.now = now
	return &c
}

// Verify checks a delivery's headers and raw body. It returns nil only if the timestamp
// is within the tolerance and one of the signatures matches one of the secrets.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrInvalidTimestamp, ts)
	}
	sent := time.Unix(secs, 0)
	if d := v.now().Sub(sent); d > v.tolerance || d < -v.tolerance {
		return ErrInvalidTimestamp
	}
	for _, k := range v.keys {
		want := []byte(Sign(k, id, sent, body))
		for _, got := range strings.Fields(sigs) {
			if hmac.Equal([]byte(got), want) {
				return nil
			}
		}
	}
	return ErrNoMatch
}
