package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/charge"
)

// Verifier checks a bearer token and says whose it is.
type Verifier interface {
	Verify(token string) (auth.Principal, error)
}

// The scopes of docs/api.md, "Authentication".
const (
	ScopeChargesWrite   = auth.ScopeChargesWrite
	ScopeChargesRead    = auth.ScopeChargesRead
	ScopeEventsRead     = auth.ScopeEventsRead
	ScopeWebhooksManage = auth.ScopeWebhooksManage
)

const (
	merchantKey  = "merchant"
	principalKey = "principal"
)

// authenticate requires a valid bearer token and records its principal.
func (s *Server) authenticate(c *gin.Context) {
	scheme, token, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		unauthenticated(c, "A bearer token is required.")
		return
	}
	p, err := s.verifier.Verify(strings.TrimSpace(token))
	if err != nil {
		// The reason is not logged with the token, and not told to the caller beyond
		// "invalid": which check failed is of use to an attacker.
		unauthenticated(c, "The bearer token is invalid or expired.")
		return
	}
	c.Set(principalKey, p)
	c.Set(merchantKey, p.Merchant)
	c.Next()
}

func unauthenticated(c *gin.Context, detail string) {
	c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
	abortProblem(c, http.StatusUnauthorized, charge.CodeUnauthenticated, "", detail)
}

// requireScope lets the request through only if its token carries scope.
func requireScope(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, _ := c.Get(principalKey)
		if pr, ok := p.(auth.Principal); !ok || !pr.HasScope(scope) {
			c.Header("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+scope+`"`)
			abortProblem(c, http.StatusForbidden, charge.CodeInsufficientScope, "", "This token lacks the "+scope+" scope.")
			return
		}
		c.Next()
	}
}

func merchant(c *gin.Context) string { return c.GetString(merchantKey) }
