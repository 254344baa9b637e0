package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The devstack's issuer and audience, which its tokens carry.
const (
	devIssuer   = "billing-dev"
	devAudience = "billing-api"
)

// maxBody is the largest request body the ceiling server reads, as the API's limit.
const maxBody = 64 << 10

// httpCeiling is the least an ingest must do per charge, and nothing else: a Gin server on
// loopback that verifies the same EdDSA token, publishes the body to a scratch stream with
// one JetStream publish that waits for its ack (Nats-Msg-Id the Idempotency-Key, as the
// design dedupes), and answers 202.
type httpCeiling struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	verifier *tokenVerifier
	srv      *http.Server
	ln       net.Listener
	served   chan error
}

const (
	ceilingStream  = "BENCH_HTTP_CEILING"
	ceilingSubject = "bench.http"
)

func startHTTPCeiling(ctx context.Context, natsURL, jwksPath string, replicas int) (*httpCeiling, error) {
	verifier, err := newTokenVerifier(jwksPath, devIssuer, devAudience)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(natsURL, nats.Name("bench-http-ceiling"))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: ceilingStream, Subjects: []string{ceilingSubject}, Storage: jetstream.FileStorage, Replicas: replicas,
	}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("creating stream %s: %w", ceilingStream, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		nc.Close()
		return nil, err
	}
	h := &httpCeiling{nc: nc, js: js, verifier: verifier, ln: ln, served: make(chan error, 1)}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.POST("/v1/charges", h.create)
	h.srv = &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { h.served <- h.srv.Serve(ln) }()
	return h, nil
}

func (h *httpCeiling) url() string { return "http://" + h.ln.Addr().String() + "/v1/charges" }

func (h *httpCeiling) create(c *gin.Context) {
	scheme, token, _ := strings.Cut(c.GetHeader("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		c.AbortWithStatus(http.StatusUnauthorized)
		return
	}
	if _, err := h.verifier.verify(token); err != nil {
		c.AbortWithStatus(http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxBody))
	if err != nil {
		c.AbortWithStatus(http.StatusBadRequest)
		return
	}
	_, err = h.js.Publish(c.Request.Context(), ceilingSubject, body, jetstream.WithMsgID(c.GetHeader("Idempotency-Key")))
	if err != nil {
		c.AbortWithStatus(http.StatusServiceUnavailable)
		return
	}
	c.Status(http.StatusAccepted)
}

// close stops the server and deletes the scratch stream.
func (h *httpCeiling) close(ctx context.Context) error {
	err := h.srv.Shutdown(ctx)
	if serr := <-h.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	err = errors.Join(err, h.js.DeleteStream(ctx, ceilingStream))
	h.nc.Close()
	return err
}
