package auth

import "slices"

// Principal is the caller a verified token speaks for.
type Principal struct {
	// Merchant is the token's sub claim.
	Merchant string
	// Scopes are the entries of the space-separated scope claim, in order;
	// empty when the claim is absent.
	Scopes []string
}

// HasScope reports whether the principal was granted scope s (exact match).
func (p Principal) HasScope(s string) bool {
	return slices.Contains(p.Scopes, s)
}
