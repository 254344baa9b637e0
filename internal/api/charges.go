package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
)

// MaxWait is the longest a GET may hold for a charge to settle.
const MaxWait = 60 * time.Second

// idempotencyRequest checks the Idempotency-Key header and describes the request for the
// idempotency layer; on failure it has answered and returns false.
func idempotencyRequest(c *gin.Context, body []byte) (ingest.Request, bool) {
	key, present := c.Request.Header["Idempotency-Key"]
	switch {
	case !present || len(key) == 0 || key[0] == "":
		abortProblem(c, http.StatusBadRequest, charge.CodeIdempotencyMissing, "Idempotency-Key", "POST requests require an Idempotency-Key header.")
		return ingest.Request{}, false
	case len(key) > 1 || !ingest.ValidKey(key[0]):
		abortProblem(c, http.StatusBadRequest, charge.CodeIdempotencyInvalid, "Idempotency-Key", "Idempotency-Key must be 1 to 255 printable ASCII characters.")
		return ingest.Request{}, false
	}
	return ingest.Request{
		Merchant: merchant(c), Key: key[0], Method: c.Request.Method, Path: c.Request.URL.Path, Body: body,
	}, true
}

// createCharge is POST /v1/charges.
func (s *Server) createCharge(c *gin.Context) {
	var p charge.CreateParams
	req, ok := readIdempotent(c, &p)
	if !ok {
		return
	}
	if invalid := p.Validate(); invalid != nil {
		abortInvalid(c, invalid)
		return
	}
	resp, err := s.charges.Create(c.Request.Context(), req, &p)
	if err != nil {
		s.abortError(c, err)
		return
	}
	if !resp.Replayed {
		s.metrics.accepted.Inc()
	}
	s.reply(c, resp, "/v1/charges/")
}

// captureCharge is POST /v1/charges/{id}/capture: 202 with the charge, which a worker
// then captures.
func (s *Server) captureCharge(c *gin.Context) {
	var p charge.CaptureParams
	req, ok := readIdempotent(c, &p)
	if !ok {
		return
	}
	if invalid := p.Validate(); invalid != nil {
		abortInvalid(c, invalid)
		return
	}
	resp, err := s.charges.Capture(c.Request.Context(), req, c.Param("id"), &p)
	s.replyOperation(c, "capture", resp, err, "")
}

// cancelCharge is POST /v1/charges/{id}/cancel: 202 with the charge, which a worker then
// cancels. Its body, if any, is the empty object.
func (s *Server) cancelCharge(c *gin.Context) {
	var p charge.CancelParams
	req, ok := readIdempotent(c, &p)
	if !ok {
		return
	}
	resp, err := s.charges.Cancel(c.Request.Context(), req, c.Param("id"))
	s.replyOperation(c, "cancel", resp, err, "")
}

// replyOperation answers an accepted capture, cancel or refund (err being its failure),
// counting it the first time.
func (s *Server) replyOperation(c *gin.Context, operation string, resp ingest.Response, err error, location string) {
	if err != nil {
		s.abortError(c, err)
		return
	}
	if !resp.Replayed {
		s.metrics.operations.WithLabelValues(operation).Inc()
	}
	s.reply(c, resp, location)
}

// getCharge is GET /v1/charges/{id}[?wait=30s].
func (s *Server) getCharge(c *gin.Context) {
	if !onlyQuery(c, "wait") {
		return
	}
	var wait time.Duration
	if raw, ok := c.GetQuery("wait"); ok {
		d, err := time.ParseDuration(raw)
		if err != nil {
			if n, nerr := strconv.Atoi(raw); nerr == nil {
				d, err = time.Duration(n)*time.Second, nil
			}
		}
		if err != nil || d < 0 || d > MaxWait {
			abortProblem(c, http.StatusBadRequest, charge.CodeParameterInvalid, "wait", "wait must be a duration from 0s to 60s, such as 30s.")
			return
		}
		wait = d
	}
	var (
		ch  charge.Charge
		err error
	)
	if wait > 0 {
		ch, err = s.charges.Wait(c.Request.Context(), merchant(c), c.Param("id"), wait)
	} else {
		ch, err = s.charges.Get(c.Request.Context(), merchant(c), c.Param("id"))
	}
	if err != nil {
		s.abortError(c, err)
		return
	}
	c.JSON(http.StatusOK, ch.Public())
}

// list is the list object of docs/api.md.
type list[T any] struct {
	Object  string `json:"object"`
	URL     string `json:"url"`
	HasMore bool   `json:"has_more"`
	Data    []T    `json:"data"`
}

// listCharges is GET /v1/charges.
func (s *Server) listCharges(c *gin.Context) {
	if !onlyQuery(c, "limit", "starting_after", "status") {
		return
	}
	limit, startingAfter, ok := listParams(c, charge.PrefixCharge, "a charge")
	if !ok {
		return
	}
	p := charge.ListParams{Limit: limit, StartingAfter: startingAfter}
	if raw, ok := c.GetQuery("status"); ok {
		if !charge.Status(raw).Valid() {
			abortProblem(c, http.StatusBadRequest, charge.CodeParameterInvalid, "status", "status must be one of pending, succeeded, failed, requires_capture, canceled.")
			return
		}
		p.Status = charge.Status(raw)
	}
	charges, more, err := s.charges.List(c.Request.Context(), merchant(c), p)
	if err != nil {
		s.abortError(c, err)
		return
	}
	out := list[charge.Charge]{Object: "list", URL: "/v1/charges", HasMore: more, Data: make([]charge.Charge, len(charges))}
	for i, ch := range charges {
		out.Data[i] = ch.Public()
	}
	c.JSON(http.StatusOK, out)
}

// listParams reads the query parameters every list takes: limit (1 to 100, default 10)
// and starting_after (an id with prefix; what names it in the error, as in "a charge").
// On failure it has answered and returns false.
func listParams(c *gin.Context, prefix, what string) (limit int, startingAfter string, ok bool) {
	limit = 10
	if raw, found := c.GetQuery("limit"); found {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 100 {
			abortProblem(c, http.StatusBadRequest, charge.CodeParameterInvalid, "limit", "limit must be an integer from 1 to 100.")
			return 0, "", false
		}
		limit = n
	}
	if raw, found := c.GetQuery("starting_after"); found {
		if !charge.ValidID(prefix, raw) {
			abortProblem(c, http.StatusBadRequest, charge.CodeParameterInvalid, "starting_after", "starting_after must be "+what+" id.")
			return 0, "", false
		}
		startingAfter = raw
	}
	return limit, startingAfter, true
}

// onlyQuery answers 400 parameter_unknown for a query parameter not in allowed, and for
// one given twice.
func onlyQuery(c *gin.Context, allowed ...string) bool {
	for k, v := range c.Request.URL.Query() {
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			abortProblem(c, http.StatusBadRequest, charge.CodeParameterUnknown, k, "Received unknown parameter: "+k)
			return false
		}
		if len(v) > 1 {
			abortProblem(c, http.StatusBadRequest, charge.CodeParameterInvalid, k, k+" must be given once.")
			return false
		}
	}
	return true
}
