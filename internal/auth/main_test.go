package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a JWKS refresh goroutine outlives its context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
