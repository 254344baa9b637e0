package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

const (
	urlRefreshInterval = 5 * time.Minute
	// urlUnknownKIDEvery spaces refetches caused by unknown kids. It is longer
	// than urlFetchTimeout so that a token arriving while the limiter is
	// exhausted fails at once instead of waiting for it (rate.Limiter.Wait
	// gives up immediately when the wait would pass the deadline).
	urlUnknownKIDEvery = time.Minute
	urlFetchTimeout    = 10 * time.Second
)

// newKeyfunc wraps a JWK storage in keyfunc's lookup, which selects the key
// by kid, rejects a JWK whose alg differs from the token's and returns public
// keys only. Keys published for encryption (use "enc") are refused.
func newKeyfunc(ctx context.Context, storage jwkset.Storage) (keyfunc.Keyfunc, error) {
	return keyfunc.New(keyfunc.Options{
		Ctx:          ctx,
		Storage:      storage,
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
}

// parseJWKS turns JWKS JSON into a keyfunc. Symmetric keys and keys of a type
// jwkset does not support (Ed448, ...) are skipped; any other bad
// key, or a kid used twice, fails the whole set. Private parts are dropped.
func parseJWKS(data []byte, logger *slog.Logger) (keyfunc.Keyfunc, int, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, 0, fmt.Errorf("decoding JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, 0, errors.New(`decoding JWKS: no "keys" member`)
	}
	store := jwkset.NewMemoryStorage()
	seen := make(map[string]bool, len(set.Keys))
	n := 0
	for i, m := range set.Keys {
		if m.KTY == jwkset.KtyOct {
			// HS256 only ever uses Config.HS256Secret.
			logger.Warn("auth: skipping symmetric JWK; JWKS keys are only used for EdDSA, ES256 and RS256", "index", i, "kid", m.KID)
			continue
		}
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if errors.Is(err, jwkset.ErrUnsupportedKey) {
			logger.Warn("auth: skipping unsupported JWK", "index", i, "kid", m.KID, "kty", m.KTY)
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("JWK %d (kid %q): %w", i, m.KID, err)
		}
		if seen[m.KID] {
			return nil, 0, fmt.Errorf("JWK %d: kid %q used more than once", i, m.KID)
		}
		seen[m.KID] = true
		if err := store.KeyWrite(context.Background(), jwk); err != nil {
			return nil, 0, fmt.Errorf("storing JWK %d: %w", i, err)
		}
		n++
	}
	kf, err := newKeyfunc(context.Background(), store)
	if err != nil {
		return nil, 0, err
	}
	return kf, n, nil
}

// newURLKeyfunc fetches the JWKS at rawURL now, failing if it cannot, and
// keeps it fresh in a goroutine that ends with ctx.
func newURLKeyfunc(ctx context.Context, rawURL string, client *http.Client, logger *slog.Logger) (_ jwt.Keyfunc, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("invalid URL")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("URL %s: want an http or https address", u.Redacted())
	}
	redacted := u.Redacted()

	// keyfunc starts the refresh goroutine before the first fetch: stop it if
	// we fail. On success it runs until the caller's ctx ends.
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	noStartWithoutKeys := false
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{rawURL}, keyfunc.Override{
		Client:                    client,
		HTTPTimeout:               urlFetchTimeout,
		NoErrorReturnFirstHTTPReq: &noStartWithoutKeys,
		RateLimitWaitMax:          urlFetchTimeout,
		RefreshInterval:           urlRefreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(urlUnknownKIDEvery), 1),
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				logger.WarnContext(ctx, "auth: refreshing JWKS failed; keeping the keys fetched before", "url", redacted, "error", err)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	wrapped, err := newKeyfunc(ctx, kf.Storage())
	if err != nil {
		return nil, err
	}
	if keys, err := kf.Storage().KeyReadAll(ctx); err == nil && len(keys) == 0 {
		logger.Warn("auth: JWKS has no usable keys yet", "url", redacted)
	}
	return wrapped.Keyfunc, nil
}
