package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
	"github.com/billing/billing/internal/webhook"
)

// listEvents is GET /v1/events.
func (s *Server) listEvents(c *gin.Context) {
	if !onlyQuery(c, "type", "limit", "starting_after") {
		return
	}
	eventType, filtered := c.GetQuery("type")
	if filtered && !slices.Contains(webhook.EventTypes, eventType) {
		abortProblem(c, http.StatusBadRequest, charge.CodeParameterInvalid, "type",
			"type must be one of "+strings.Join(webhook.EventTypes, ", ")+".")
		return
	}
	limit, startingAfter, ok := listParams(c, charge.PrefixEvent, "an event")
	if !ok {
		return
	}
	events, more, err := s.webhooks.ListEvents(c.Request.Context(), merchant(c), eventType, limit, startingAfter)
	if err != nil {
		s.abortError(c, err)
		return
	}
	out := list[charge.Event]{Object: "list", URL: "/v1/events", HasMore: more, Data: make([]charge.Event, len(events))}
	for i, e := range events {
		out.Data[i] = e.Public()
	}
	c.JSON(http.StatusOK, out)
}

// getEvent is GET /v1/events/{id}.
func (s *Server) getEvent(c *gin.Context) {
	if !onlyQuery(c) {
		return
	}
	e, err := s.webhooks.GetEvent(c.Request.Context(), merchant(c), c.Param("id"))
	if err != nil {
		s.abortError(c, err)
		return
	}
	c.JSON(http.StatusOK, e.Public())
}

// redeliverParams is the optional body of a redelivery.
type redeliverParams struct {
	Endpoint *string `json:"endpoint"`
}

// redeliverEvent is POST /v1/events/{id}/redeliver: 202 with the event, which is sent
// again to the endpoint named, or to every enabled endpoint that subscribes to its type.
func (s *Server) redeliverEvent(c *gin.Context) {
	var p redeliverParams
	req, ok := readIdempotent(c, &p)
	if !ok {
		return
	}
	var endpoint string
	if p.Endpoint != nil {
		if !charge.ValidID(charge.PrefixWebhookEndpoint, *p.Endpoint) {
			abortProblem(c, http.StatusBadRequest, charge.CodeParameterInvalid, "endpoint", "endpoint must be a webhook endpoint id.")
			return
		}
		endpoint = *p.Endpoint
	}
	rd, err := s.webhooks.PrepareRedeliver(c.Request.Context(), merchant(c), c.Param("id"), endpoint)
	if err != nil {
		s.abortError(c, err)
		return
	}
	s.submit(c, req, ingest.Response{Status: http.StatusAccepted, Body: rd.Body},
		ingest.Action{Kind: webhook.ActionRedeliver, Payload: rd.Payload}, "")
}
