package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/billing/billing/internal/charge"
)

// createRefund is POST /v1/refunds: 202 with the pending refund, which a worker then
// settles.
func (s *Server) createRefund(c *gin.Context) {
	var p charge.RefundParams
	req, ok := readIdempotent(c, &p)
	if !ok {
		return
	}
	if invalid := p.Validate(); invalid != nil {
		abortInvalid(c, invalid)
		return
	}
	resp, err := s.refunds.Create(c.Request.Context(), req, &p)
	s.replyOperation(c, "refund", resp, err, "/v1/refunds/")
}

// getRefund is GET /v1/refunds/{id}.
func (s *Server) getRefund(c *gin.Context) {
	if !onlyQuery(c) {
		return
	}
	r, err := s.refunds.Get(c.Request.Context(), merchant(c), c.Param("id"))
	if err != nil {
		s.abortError(c, err)
		return
	}
	c.JSON(http.StatusOK, r.Public())
}

// listRefunds is GET /v1/refunds[?charge=ch_…].
func (s *Server) listRefunds(c *gin.Context) {
	if !onlyQuery(c, "charge", "limit", "starting_after") {
		return
	}
	limit, startingAfter, ok := listParams(c, charge.PrefixRefund, "a refund")
	if !ok {
		return
	}
	p := charge.RefundListParams{Limit: limit, StartingAfter: startingAfter}
	if raw, ok := c.GetQuery("charge"); ok {
		if !charge.ValidID(charge.PrefixCharge, raw) {
			abortProblem(c, http.StatusBadRequest, charge.CodeParameterInvalid, "charge", "charge must be a charge id (ch_…).")
			return
		}
		p.Charge = raw
	}
	refunds, more, err := s.refunds.List(c.Request.Context(), merchant(c), p)
	if err != nil {
		s.abortError(c, err)
		return
	}
	out := list[charge.Refund]{Object: "list", URL: "/v1/refunds", HasMore: more, Data: make([]charge.Refund, len(refunds))}
	for i, r := range refunds {
		out.Data[i] = r.Public()
	}
	c.JSON(http.StatusOK, out)
}
