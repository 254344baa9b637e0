package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/billing/billing/internal/charge"
)

// MaxBodyBytes is the largest request body accepted (API.md, "Conventions").
const MaxBodyBytes = 64 << 10

// readJSON reads the request body into dst, which must be a pointer to a struct with
// json tags, enforcing API.md's rules: size, content type, well-formed JSON with nothing
// after it, no unknown fields, right types, and no card number anywhere. It returns the
// canonical form of the body (keys sorted, no white space) for idempotency comparison. A
// missing body is the empty object. On failure it has answered and returns false.
func readJSON(c *gin.Context, dst any) ([]byte, bool) {
	r := c.Request
	if r.ContentLength > MaxBodyBytes {
		abortProblem(c, http.StatusRequestEntityTooLarge, charge.CodeBodyTooLarge, "", "The request body must be at most 64 KiB.")
		return nil, false
	}
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		abortProblem(c, http.StatusRequestEntityTooLarge, charge.CodeBodyTooLarge, "", "The request body must be at most 64 KiB.")
		return nil, false
	case err != nil:
		abortProblem(c, http.StatusBadRequest, charge.CodeInvalidJSON, "", "The request body could not be read.")
		return nil, false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	} else if !isJSON(r.Header.Get("Content-Type")) {
		abortProblem(c, http.StatusUnsupportedMediaType, charge.CodeUnsupportedMediaType, "", "The request body must be application/json.")
		return nil, false
	}
	canonical, invalid := decodeStrict(raw, dst)
	if invalid != nil {
		abortInvalid(c, invalid)
		return nil, false
	}
	return canonical, true
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// decodeStrict decodes raw into dst and returns its canonical form, or the first problem
// with it. It is the parser of outside input that the fuzz test drives.
func decodeStrict(raw []byte, dst any) ([]byte, *charge.InvalidRequestError) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body is not valid JSON.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body has data after the JSON value.")
	}
	obj, ok := generic.(map[string]any)
	if !ok {
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body must be a JSON object.")
	}
	// Card data first: its mere presence is the error, whatever else is wrong.
	if containsCard(obj) {
		return nil, charge.Invalid(charge.CodeRawCardDataRejected, "",
			"Sending raw card data is not allowed; use a payment method token (pm_...).")
	}
	known := jsonFields(reflect.TypeOf(dst).Elem())
	for k := range obj {
		if _, ok := known[k]; !ok {
			return nil, charge.Invalid(charge.CodeParameterUnknown, k, "Received unknown parameter: %s", k)
		}
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			param, _, _ := strings.Cut(typeErr.Field, ".")
			return nil, charge.Invalid(charge.CodeParameterInvalid, param, "%s has the wrong type", param)
		}
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body is not valid JSON.")
	}
	canonical, err := json.Marshal(obj)
	if err != nil {
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body is not valid JSON.")
	}
	return canonical, nil
}

// containsCard walks a parsed JSON value, keys included, for card numbers.
func containsCard(v any) bool {
	switch v := v.(type) {
	case string:
		return charge.ContainsCardNumber(v)
	case json.Number:
		return charge.ContainsCardNumber(string(v))
	case map[string]any:
		for k, e := range v {
			if charge.ContainsCardNumber(k) || containsCard(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if containsCard(e) {
				return true
			}
		}
	}
	return false
}

// jsonFields returns the JSON names of a struct type's fields.
func jsonFields(t reflect.Type) map[string]struct{} {
	fields := make(map[string]struct{}, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = struct{}{}
		}
	}
	return fields
}
