package auth

import "errors"

// ErrInvalidToken is returned (wrapped) by [Verifier.Verify] for every token
// it does not accept: malformed, badly signed, signed with a disallowed
// algorithm or key, expired, or with claims that do not match. Callers map it
// to 401 with errors.Is. The error text says why, never what the token was.
var ErrInvalidToken = errors.New("invalid token")
