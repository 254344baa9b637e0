package api

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// openAPIPath is api/openapi.yaml, relative to this package.
const openAPIPath = "../../api/openapi.yaml"

var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// loadOpenAPI parses the OpenAPI document.
func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatalf("reading the OpenAPI document: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parsing %s: %v", openAPIPath, err)
	}
	return doc
}

// asMap returns v as a mapping, failing the test (naming where) if it is not one.
func asMap(t *testing.T, v any, where string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, not a mapping", where, v)
	}
	return m
}

// TestOpenAPIDocument checks the shape of api/openapi.yaml: OpenAPI 3.1.x with info, paths
// and components, every POST taking the Idempotency-Key header, every path template's
// parameters declared, every operation naming its scopes, and every $ref resolving.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)

	version, _ := doc["openapi"].(string)
	if !strings.HasPrefix(version, "3.1.") {
		t.Errorf("openapi is %q, want 3.1.x", version)
	}
	info := asMap(t, doc["info"], "info")
	if title, _ := info["title"].(string); title == "" {
		t.Error("info.title is missing")
	}
	if v, _ := info["version"].(string); v == "" {
		t.Error("info.version is missing (or not a string)")
	}
	asMap(t, doc["components"], "components")
	paths := asMap(t, doc["paths"], "paths")
	if len(paths) == 0 {
		t.Fatal("paths is empty")
	}

	template := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range paths {
		item := asMap(t, item, "paths."+path)
		for _, method := range openAPIMethods {
			op, ok := item[method]
			if !ok {
				continue
			}
			where := strings.ToUpper(method) + " " + path
			opMap := asMap(t, op, where)
			if _, ok := opMap["responses"]; !ok {
				t.Errorf("%s declares no responses", where)
			}
			// An operation is public only by saying so: security [] and x-scopes [].
			public := false
			if sec, ok := opMap["security"].([]any); ok && len(sec) == 0 {
				public = true
			}
			if scopes, _ := opMap["x-scopes"].([]any); len(scopes) == 0 && !public {
				t.Errorf("%s declares no x-scopes", where)
			}
			params := parameters(t, doc, item, opMap, where)
			for _, m := range template.FindAllStringSubmatch(path, -1) {
				p, ok := params["path "+m[1]]
				if !ok || p["required"] != true {
					t.Errorf("%s: path parameter %q is not declared as required", where, m[1])
				}
			}
			if method != "post" {
				continue
			}
			key, ok := params["header idempotency-key"]
			switch {
			case !ok:
				t.Errorf("%s does not declare the Idempotency-Key header", where)
			case key["required"] != true:
				t.Errorf("%s: Idempotency-Key is not required", where)
			default:
				schema := asMap(t, key["schema"], where+" Idempotency-Key schema")
				if schema["minLength"] != 1 || schema["maxLength"] != 255 {
					t.Errorf("%s: Idempotency-Key is not 1 to 255 characters: %v", where, schema)
				}
			}
		}
	}

	refs := 0
	walkRefs(doc, func(ref string) {
		refs++
		if _, err := resolveRef(doc, ref); err != nil {
			t.Errorf("$ref %q: %v", ref, err)
		}
	})
	if refs == 0 {
		t.Error("the document has no $ref at all")
	}
}

// parameters returns the parameters of an operation (the path item's and its own, the
// latter overriding), $refs resolved, by "in name" (the name lowercase for headers).
func parameters(t *testing.T, doc, item, op map[string]any, where string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, list := range []any{item["parameters"], op["parameters"]} {
		ps, _ := list.([]any)
		for i, p := range ps {
			pm := asMap(t, p, fmt.Sprintf("%s parameter %d", where, i))
			if ref, ok := pm["$ref"].(string); ok {
				resolved, err := resolveRef(doc, ref)
				if err != nil {
					t.Errorf("%s: parameter $ref %q: %v", where, ref, err)
					continue
				}
				pm = asMap(t, resolved, ref)
			}
			in, _ := pm["in"].(string)
			name, _ := pm["name"].(string)
			if in == "header" {
				name = strings.ToLower(name)
			}
			out[in+" "+name] = pm
		}
	}
	return out
}

// walkRefs calls f with the value of every $ref in v.
func walkRefs(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if ref, ok := e.(string); ok && k == "$ref" {
				f(ref)
				continue
			}
			walkRefs(e, f)
		}
	case []any:
		for _, e := range v {
			walkRefs(e, f)
		}
	}
}

// resolveRef resolves a local reference ("#/components/…") in doc.
func resolveRef(doc map[string]any, ref string) (any, error) {
	pointer, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("not a local reference")
	}
	var cur any = doc
	for _, token := range strings.Split(pointer, "/") {
		token = strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is not inside a mapping", token)
		}
		if cur, ok = m[token]; !ok {
			return nil, fmt.Errorf("no %q", token)
		}
	}
	if cur == nil {
		return nil, fmt.Errorf("resolves to nothing")
	}
	return cur, nil
}

// TestOpenAPIMatchesRoutes requires the operations of api/openapi.yaml to be exactly the
// routes the engine registers under /v1: a route added without the document, or an
// operation documented without a route, fails.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	paths := asMap(t, doc["paths"], "paths")

	documented := map[string]bool{}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range paths {
		item := asMap(t, item, "paths."+path)
		for _, method := range openAPIMethods {
			if _, ok := item[method]; ok {
				documented[strings.ToUpper(method)+" "+param.ReplaceAllString(path, ":$1")] = true
			}
		}
	}

	srv := New(Config{RateLimit: 1, RateBurst: 1}, Deps{
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: prometheus.NewRegistry(),
		NowFunc:    time.Now,
	})
	registered := map[string]bool{}
	for _, r := range srv.engine.Routes() {
		if r.Path == "/v1" || strings.HasPrefix(r.Path, "/v1/") {
			registered[r.Method+" "+r.Path] = true
		}
	}
	if len(registered) == 0 {
		t.Fatal("the engine registers no route under /v1")
	}

	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !registered[r] {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 {
		t.Errorf("routes not in %s:\n  %s", openAPIPath, strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("operations in %s with no route:\n  %s", openAPIPath, strings.Join(extra, "\n  "))
	}
}

// TestOpenAPIProblemCodes requires the Problem schema's code enum to be exactly the codes
// the server sends: the Code constants of internal/charge and the literal codes passed to
// abortProblem in this package.
func TestOpenAPIProblemCodes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	schema, err := resolveRef(doc, "#/components/schemas/Problem/properties/code/enum")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, c := range schema.([]any) {
		documented[c.(string)] = true
	}

	sent := map[string]bool{}
	fset := token.NewFileSet()
	files, _ := filepath.Glob("../charge/*.go")
	own, _ := filepath.Glob("*.go")
	for _, path := range append(files, own...) {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec: // const CodeX = "x"
				for i, name := range n.Names {
					if strings.HasPrefix(name.Name, "Code") && i < len(n.Values) {
						if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							sent[strings.Trim(lit.Value, `"`)] = true
						}
					}
				}
			case *ast.CallExpr: // abortProblem(c, status, "x", ...)
				if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "abortProblem" && len(n.Args) > 2 {
					if lit, ok := n.Args[2].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						sent[strings.Trim(lit.Value, `"`)] = true
					}
				}
			}
			return true
		})
	}
	if len(sent) < 20 {
		t.Fatalf("found only %d codes in the source: the parsing is wrong", len(sent))
	}
	for c := range sent {
		if !documented[c] {
			t.Errorf("the server sends code %q, which the Problem schema does not list", c)
		}
	}
	for c := range documented {
		if !sent[c] {
			t.Errorf("the Problem schema lists code %q, which the server never sends", c)
		}
	}
}

// TestServesOpenAPI: GET /v1/openapi.json answers the document, in JSON, without a token.
func TestServesOpenAPI(t *testing.T) {
	t.Parallel()
	srv := New(Config{RateLimit: 1, RateBurst: 1}, Deps{
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: prometheus.NewRegistry(),
		NowFunc:    time.Now,
	})
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("answered %d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var served map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &served); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	doc := loadOpenAPI(t)
	if served["openapi"] != doc["openapi"] || len(served["paths"].(map[string]any)) != len(asMap(t, doc["paths"], "paths")) {
		t.Errorf("served openapi %v with %d paths, not api/openapi.yaml", served["openapi"], len(served["paths"].(map[string]any)))
	}
}
