package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
)

// problem is an RFC 9457 problem details body with the API's code and param.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Param  string `json:"param,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// abortProblem ends the request with a problem details answer.
func abortProblem(c *gin.Context, status int, code, param, detail string) {
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(status, problem{
		Type: "about:blank", Title: http.StatusText(status), Status: status,
		Code: code, Param: param, Detail: detail,
	})
}

// abortInvalid ends the request with a 400 for an invalid request.
func abortInvalid(c *gin.Context, e *charge.InvalidRequestError) {
	abortProblem(c, http.StatusBadRequest, e.Code, e.Param, e.Detail)
}

// abortError maps an error from below to its answer: the one place errors become HTTP.
// Unknown errors become a 500 with a generic message; the full error is logged with the
// request id and never sent.
func (s *Server) abortError(c *gin.Context, err error) {
	var invalid *charge.InvalidRequestError
	var reused *ingest.KeyReusedError
	switch {
	case errors.As(err, &invalid) && invalid.Code == charge.CodeResourceMissing:
		// An id in the body that names nothing of the merchant's: 404 naming the field.
		abortProblem(c, http.StatusNotFound, invalid.Code, invalid.Param, invalid.Detail)
	case errors.As(err, &invalid):
		abortInvalid(c, invalid)
	case errors.Is(err, charge.ErrNotFound):
		abortProblem(c, http.StatusNotFound, charge.CodeResourceMissing, "id", "No such object.")
	case errors.As(err, &reused):
		abortProblem(c, http.StatusUnprocessableEntity, charge.CodeIdempotencyReused, "",
			"Keys for idempotent requests can only be used with the same parameters they were first used with; these differ: "+strings.Join(reused.Fields, ", "))
	case errors.Is(err, ingest.ErrKeyInUse):
		abortProblem(c, http.StatusConflict, charge.CodeIdempotencyInUse, "",
			"A request with this idempotency key is still being executed; retry later.")
	case errors.Is(err, charge.ErrOperationInProgress):
		c.Header("Retry-After", strconv.Itoa(1))
		abortProblem(c, http.StatusConflict, charge.CodeOperationInProgress, "",
			"Another capture or cancel of this charge is in progress; retry once it has settled.")
	case errors.Is(err, charge.ErrUnavailable):
		s.logger.WarnContext(c.Request.Context(), "request not accepted: dependency unavailable",
			append(requestAttrs(c), "error", err)...)
		c.Header("Retry-After", strconv.Itoa(1))
		abortProblem(c, http.StatusServiceUnavailable, charge.CodeUnavailable, "",
			"The service cannot take the request right now; nothing was accepted. Retry later.")
	default:
		s.logger.ErrorContext(c.Request.Context(), "request failed",
			append(requestAttrs(c), "error", err)...)
		abortProblem(c, http.StatusInternalServerError, "internal_error", "",
			"An internal error occurred. Quote the X-Request-Id when you report it.")
	}
}
