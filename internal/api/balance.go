package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
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
	c.JSON(http.StatusOK, b.Public())
}
