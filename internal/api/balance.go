package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/billing/billing/internal/charge"
)

// getBalance is GET /v1/balance.
func (s *Server) getBalance(c *gin.Context) {
	if !onlyQuery(c) {
		return
	}
	b, err := s.balances.Get(c.Request.Context(), merchant(c))
	if err != nil {
		s.abortError(c, err)
		return
	}
	// The object name, and lists that are empty rather than null for a merchant whose
	// money has not moved yet.
	b.Object = "balance"
	if b.Available == nil {
		b.Available = []charge.Money{}
	}
	if b.Pending == nil {
		b.Pending = []charge.Money{}
	}
	c.JSON(http.StatusOK, b)
}
