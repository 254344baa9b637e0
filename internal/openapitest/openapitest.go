// Package openapitest holds the API's tests to its OpenAPI document (api/openapi.yaml):
// Transport validates every request a test sends and every answer it gets with
// kin-openapi, so that neither the server nor the document can drift from the other
// unnoticed.
package openapitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/billing/billing/api"
)

// Router is the document, validated, as a kin-openapi router that matches any host: the
// tests' servers listen on ports of their own, not on the document's example server.
var Router = sync.OnceValues(func() (routers.Router, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.YAML)
	if err != nil {
		return nil, fmt.Errorf("loading api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	doc.Servers = openapi3.Servers{{URL: "/"}}
	return gorillamux.NewRouter(doc)
})

// Reporter is where a Transport reports what does not follow the document: a test's
// Errorf.
type Reporter interface {
	Errorf(format string, args ...any)
}

// Transport is an http.RoundTripper that checks each exchange against the document:
//
//   - an answer must be one the document gives for its operation and status, headers and
//     body included;
//   - a request the document refuses must be refused (4xx) by the server too, since the
//     tests send invalid requests on purpose; a request it allows may get any documented
//     answer;
//   - a request to a path or method under /v1/ that the document does not have must get
//     404 or 405.
//
// Requests to other paths (the admin listener's) pass unchecked.
type Transport struct {
	// Base sends the requests; http.DefaultTransport when nil.
	Base http.RoundTripper
	// Report receives each departure from the document.
	Report Reporter
}

var options = &openapi3filter.Options{
	// The server checks tokens; the document only says which scheme they use.
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	IncludeResponseStatus: true,
	MultiError:            true,
}

// RoundTrip sends req and checks the exchange.
func (tr *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := tr.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if !strings.HasPrefix(req.URL.Path, "/v1/") {
		// Not the API: the admin listener's /metrics, /livez and /readyz.
		return base.RoundTrip(req)
	}
	router, err := Router()
	if err != nil {
		return nil, err
	}
	route, params, findErr := router.FindRoute(req)
	var reqInput *openapi3filter.RequestValidationInput
	var reqErr error
	if findErr == nil {
		// Validation reads the body: it gets a copy, the server the original bytes.
		body, err := readBody(&req.Body)
		if err != nil {
			return nil, err
		}
		check := req.Clone(req.Context())
		check.Body = io.NopCloser(bytes.NewReader(body))
		reqInput = &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route, Options: options}
		reqErr = openapi3filter.ValidateRequest(req.Context(), reqInput)
	}

	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	where := req.Method + " " + req.URL.RequestURI()
	if findErr != nil {
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			tr.Report.Errorf("openapi: %s is not in the document (%v), but the server answered %d", where, findErr, resp.StatusCode)
		}
		return resp, nil
	}
	if reqErr != nil && resp.StatusCode < 400 {
		tr.Report.Errorf("openapi: the document refuses %s (%v), but the server answered %d", where, reqErr, resp.StatusCode)
	}
	body, err := readBody(&resp.Body)
	if err != nil {
		return nil, err
	}
	respInput := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqInput,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                options,
	}
	if err := openapi3filter.ValidateResponse(req.Context(), respInput); err != nil {
		tr.Report.Errorf("openapi: the answer %d to %s is not the document's: %v\nbody: %.500s", resp.StatusCode, where, err, body)
	}
	return resp, nil
}

// readBody reads *b whole and puts the same bytes back in its place.
func readBody(b *io.ReadCloser) ([]byte, error) {
	if *b == nil || *b == http.NoBody {
		return nil, nil
	}
	data, err := io.ReadAll(*b)
	closeErr := (*b).Close()
	*b = io.NopCloser(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("reading a body to validate it: %w", err)
	}
	return data, errors.Join(closeErr)
}

// CloseIdleConnections closes Base's idle connections, as http.Client.CloseIdleConnections
// expects of its transport.
func (tr *Transport) CloseIdleConnections() {
	if c, ok := tr.Base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
