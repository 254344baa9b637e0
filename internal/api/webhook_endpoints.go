package api

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
	"github.com/billing/billing/internal/webhook"
)

// readIdempotent reads an idempotent POST: the Idempotency-Key header first (so that a
// request without one is told so whatever its body), then the query (which takes no
// parameters) and the body into dst. On failure it has answered and returns false.
func readIdempotent(c *gin.Context, dst any) (ingest.Request, bool) {
	if _, ok := c.Request.Header["Idempotency-Key"]; !ok {
		idempotencyRequest(c, nil) // answers 400
		return ingest.Request{}, false
	}
	if !onlyQuery(c) {
		return ingest.Request{}, false
	}
	body, ok := readJSON(c, dst)
	if !ok {
		return ingest.Request{}, false
	}
	return idempotencyRequest(c, body)
}

// submit does action once per idempotency key and answers with the response stored for
// the key: resp on first execution, the first response byte for byte on a repeat. With
// location set, the answer carries Location: location + the id of its body.
func (s *Server) submit(c *gin.Context, req ingest.Request, resp ingest.Response, action ingest.Action, location string) {
	resp, err := s.idempotency.Submit(c.Request.Context(), req, resp, action)
	if err != nil {
		s.abortError(c, err)
		return
	}
	s.reply(c, resp, location)
}

// reply answers with an idempotent POST's response, marked when it is a replay.
func (s *Server) reply(c *gin.Context, resp ingest.Response, location string) {
	if resp.Replayed {
		s.metrics.replayed.Inc()
		c.Header("Idempotent-Replayed", "true")
	}
	if resp.Sensitive {
		c.Header("Cache-Control", "no-store")
	}
	var ref struct {
		ID string `json:"id"`
	}
	if location != "" && json.Unmarshal(resp.Body, &ref) == nil && ref.ID != "" {
		c.Header("Location", location+ref.ID)
	}
	c.Data(resp.Status, "application/json", resp.Body)
}

// createEndpoint is POST /v1/webhook_endpoints.
func (s *Server) createEndpoint(c *gin.Context) {
	var p webhook.EndpointParams
	req, ok := readIdempotent(c, &p)
	if !ok {
		return
	}
	e, payload, err := s.webhooks.PrepareCreate(c.Request.Context(), merchant(c), &p)
	s.submitSecret(c, req, http.StatusCreated, e, err, ingest.Action{Kind: webhook.ActionCreate, Payload: payload}, "/v1/webhook_endpoints/")
}

// submitSecret submits an endpoint answer that shows its plain secret (create, rotate):
// stored sealed, marked not to be cached. err is the preparation's.
func (s *Server) submitSecret(c *gin.Context, req ingest.Request, status int, e webhook.Endpoint, err error, action ingest.Action, location string) {
	if err != nil {
		s.abortError(c, err)
		return
	}
	body, err := json.Marshal(e.Public())
	if err != nil {
		s.abortError(c, err)
		return
	}
	s.submit(c, req, ingest.Response{Status: status, Body: body, Sensitive: true}, action, location)
}

// listEndpoints is GET /v1/webhook_endpoints.
func (s *Server) listEndpoints(c *gin.Context) {
	if !onlyQuery(c, "limit", "starting_after") {
		return
	}
	limit, startingAfter, ok := listParams(c, charge.PrefixWebhookEndpoint, "a webhook endpoint")
	if !ok {
		return
	}
	es, more, err := s.webhooks.List(c.Request.Context(), merchant(c), limit, startingAfter)
	if err != nil {
		s.abortError(c, err)
		return
	}
	out := list[webhook.Endpoint]{Object: "list", URL: "/v1/webhook_endpoints", HasMore: more, Data: make([]webhook.Endpoint, len(es))}
	for i, e := range es {
		out.Data[i] = e.Public()
	}
	c.JSON(http.StatusOK, out)
}

// getEndpoint is GET /v1/webhook_endpoints/{id}.
func (s *Server) getEndpoint(c *gin.Context) {
	if !onlyQuery(c) {
		return
	}
	e, err := s.webhooks.Get(c.Request.Context(), merchant(c), c.Param("id"))
	if err != nil {
		s.abortError(c, err)
		return
	}
	c.JSON(http.StatusOK, e.Public())
}

// updateEndpoint is PATCH /v1/webhook_endpoints/{id}.
func (s *Server) updateEndpoint(c *gin.Context) {
	if !onlyQuery(c) {
		return
	}
	var p webhook.EndpointParams
	if _, ok := readJSON(c, &p); !ok {
		return
	}
	e, err := s.webhooks.Update(c.Request.Context(), merchant(c), c.Param("id"), &p)
	if err != nil {
		s.abortError(c, err)
		return
	}
	c.JSON(http.StatusOK, e.Public())
}

// deletedEndpoint is the answer to a DELETE.
type deletedEndpoint struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// deleteEndpoint is DELETE /v1/webhook_endpoints/{id}.
func (s *Server) deleteEndpoint(c *gin.Context) {
	if !onlyQuery(c) {
		return
	}
	id := c.Param("id")
	if err := s.webhooks.Delete(c.Request.Context(), merchant(c), id); err != nil {
		s.abortError(c, err)
		return
	}
	c.JSON(http.StatusOK, deletedEndpoint{ID: id, Object: webhook.ObjectEndpoint, Deleted: true})
}

// rotateSecret is POST /v1/webhook_endpoints/{id}/rotate_secret. Its body, if any, is
// the empty object.
func (s *Server) rotateSecret(c *gin.Context) {
	var none struct{}
	req, ok := readIdempotent(c, &none)
	if !ok {
		return
	}
	e, payload, err := s.webhooks.PrepareRotate(c.Request.Context(), merchant(c), c.Param("id"))
	s.submitSecret(c, req, http.StatusOK, e, err, ingest.Action{Kind: webhook.ActionRotate, Payload: payload}, "")
}

// listDeliveries is GET /v1/webhook_endpoints/{id}/deliveries.
func (s *Server) listDeliveries(c *gin.Context) {
	if !onlyQuery(c, "limit", "starting_after") {
		return
	}
	limit, startingAfter, ok := listParams(c, charge.PrefixWebhookDelivery, "a webhook delivery")
	if !ok {
		return
	}
	id := c.Param("id")
	ds, more, err := s.webhooks.Deliveries(c.Request.Context(), merchant(c), id, limit, startingAfter)
	if err != nil {
		s.abortError(c, err)
		return
	}
	out := list[webhook.Delivery]{Object: "list", URL: "/v1/webhook_endpoints/" + id + "/deliveries", HasMore: more, Data: make([]webhook.Delivery, len(ds))}
	for i, d := range ds {
		out.Data[i] = d.Public()
	}
	c.JSON(http.StatusOK, out)
}
