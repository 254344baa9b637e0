package auth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/billing/billing/internal/auth"
)

// The devstack mints tokens with a DevKey; the API verifies them with a
// Verifier reading the key's JWKS file.
func Example() {
	dir, err := os.MkdirTemp("", "auth-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	key, err := auth.LoadOrCreateDevKey(dir)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := auth.NewVerifier(ctx, auth.Config{
		Issuer:   "https://devstack.local",
		Audience: "billing-api",
		JWKSFile: key.JWKSPath(),
	}, nil)
	if err != nil {
		panic(err)
	}

	token, err := key.Sign("https://devstack.local", "billing-api", "merch_42",
		[]string{"charges:read", "charges:write"}, time.Hour, time.Now())
	if err != nil {
		panic(err)
	}
	p, err := v.Verify(token)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Merchant, p.HasScope("charges:write"), p.HasScope("webhooks:manage"))

	expired, err := key.Sign("https://devstack.local", "billing-api", "merch_42",
		nil, time.Hour, time.Now().Add(-2*time.Hour))
	if err != nil {
		panic(err)
	}
	_, err = v.Verify(expired)
	fmt.Println(errors.Is(err, auth.ErrInvalidToken), err)
	// Output:
	// merch_42 true false
	// true invalid token: expired
}
