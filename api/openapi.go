// Package api holds the OpenAPI 3.1 document of the merchants' API, openapi.yaml, as the
// ingest serves it (GET /v1/openapi.json) and as the tests validate requests and answers
// against it.
package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v3"
)

// YAML is openapi.yaml as written.
//
//go:embed openapi.yaml
var YAML []byte

// JSON is the same document in JSON, converted once.
var JSON = sync.OnceValues(func() ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(YAML, &doc); err != nil {
		return nil, fmt.Errorf("parsing openapi.yaml: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding openapi.yaml as JSON: %w", err)
	}
	return b, nil
})
