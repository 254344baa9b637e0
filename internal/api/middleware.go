package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

const (
	requestIDKey       = "request_id"
	clientRequestIDKey = "client_request_id"
)

// withRequestID gives every request the server's own id, answered in X-Request-Id. A
// caller's X-Request-Id is only logged beside it (when it is a sane token): used in its
// place, it would let a client forge or mix up the log lines of other requests.
func withRequestID(c *gin.Context) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := "req_" + hex.EncodeToString(b[:])
	c.Set(requestIDKey, id)
	if client := c.GetHeader("X-Request-Id"); validRequestID(client) {
		c.Set(clientRequestIDKey, client)
	}
	c.Header("X-Request-Id", id)
	c.Next()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return false
		}
	}
	return true
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// requestAttrs are the log attributes that identify a request: its id and, when the
// caller sent one, the caller's own.
func requestAttrs(c *gin.Context) []any {
	attrs := []any{"request_id", requestID(c)}
	if client := c.GetString(clientRequestIDKey); client != "" {
		attrs = append(attrs, "client_request_id", client)
	}
	return attrs
}

// recoverPanics turns a panic into a 500 problem; the panic and stack go to the log only.
func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.ErrorContext(c.Request.Context(), "panic serving request",
				append(requestAttrs(c), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))...)
			if !c.Writer.Written() {
				abortProblem(c, http.StatusInternalServerError, "internal_error", "",
					"An internal error occurred. Quote the X-Request-Id when you report it.")
			}
		}
	}()
	c.Next()
}

// observe logs each request (never its headers or body: they hold tokens and payment
// data) and records its metrics.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	elapsed := time.Since(start)
	s.metrics.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(c.Request.Method, route).Observe(elapsed.Seconds())
	// Every request at debug; at info, failures, and requests whose caller sent an
	// X-Request-Id to find them by (docs/api.md: logged beside the server's).
	if status >= 500 || c.GetString(clientRequestIDKey) != "" || s.logger.Enabled(c.Request.Context(), slog.LevelDebug) {
		s.logger.InfoContext(c.Request.Context(), "request",
			append(requestAttrs(c), "method", c.Request.Method, "route", route,
				"status", status, "duration_ms", elapsed.Milliseconds(), "merchant", c.GetString(merchantKey))...)
	}
}
