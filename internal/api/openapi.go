package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/billing/billing/api"
)

// serveOpenAPI answers GET /v1/openapi.json, without authentication: the document is
// public, as the API reference is.
func (s *Server) serveOpenAPI(c *gin.Context) {
	doc, err := api.JSON()
	if err != nil {
		// The document is embedded and api's test parses it: this is a broken build.
		s.logger.Error("serving the OpenAPI document", "error", err)
		abortProblem(c, http.StatusInternalServerError, "internal_error", "", "The OpenAPI document could not be served.")
		return
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, "application/json", doc)
}
