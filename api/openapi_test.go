package api

import (
	"encoding/json"
	"testing"
)

func TestJSONIsTheYAMLDocument(t *testing.T) {
	b, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || doc.Paths["/v1/charges"]["post"] == nil {
		t.Fatalf("openapi %q, paths %d: not the document", doc.OpenAPI, len(doc.Paths))
	}
}
