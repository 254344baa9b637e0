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
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/billing/billing/internal/charge"
)

// MaxBodyBytes is the largest request body accepted (docs/api.md, "Conventions").
const MaxBodyBytes = 64 << 10

// readJSON reads the request body into dst, which must be a pointer to a struct with
// json tags, enforcing docs/api.md's rules: size, content type, well-formed UTF-8 JSON with
// nothing after it, no duplicate keys, no unknown fields, right types, and no card number
// anywhere. It returns the canonical form of the body (keys sorted, no white space) for
// idempotency comparison. A missing body is the empty object. On failure it has answered
// and returns false.
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
//
// Text that the decoder would silently repair is refused first: bytes that are not UTF-8
// and escaped lone surrogates would both become U+FFFD. Then the body is parsed once, token
// by token, into its generic form, so that every key and value is seen: a card number
// anywhere (in a duplicated key's first value too, in data after the body) is the error
// whatever else is wrong, and duplicate keys, which Decode would resolve by keeping the
// last, are refused.
func decodeStrict(raw []byte, dst any) ([]byte, *charge.InvalidRequestError) {
	if !utf8.Valid(raw) {
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body is not valid UTF-8.")
	}
	if loneSurrogate(raw) {
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body escapes half of a UTF-16 surrogate pair alone.")
	}
	p := bodyParser{dec: json.NewDecoder(bytes.NewReader(raw))}
	p.dec.UseNumber()
	generic, err := p.value(0, "")
	if err == nil {
		// Data after the value is refused, but read for card numbers first.
		trailing := false
		for err == nil {
			if _, err = p.value(0, ""); err == nil {
				trailing = true
			}
		}
		switch {
		case errors.Is(err, errCardNumber):
		case errors.Is(err, io.EOF) && !trailing:
			err = nil
		default:
			err = errTrailingData
		}
	}
	switch {
	case errors.Is(err, errCardNumber):
		return nil, charge.Invalid(charge.CodeRawCardDataRejected, "",
			"Sending raw card data is not allowed; use a payment method token (pm_...).")
	case errors.Is(err, errTrailingData):
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body has data after the JSON value.")
	case errors.Is(err, errTooDeep):
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body is nested more than %d levels deep.", maxBodyDepth)
	case err != nil:
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body is not valid JSON.")
	}
	obj, ok := generic.(map[string]any)
	if !ok {
		return nil, charge.Invalid(charge.CodeInvalidJSON, "", "The request body must be a JSON object.")
	}
	if d := p.duplicate; d != nil {
		// No key holds a card number by now: the key can be named.
		if !d.nested {
			return nil, charge.Invalid(charge.CodeInvalidJSON, d.field, "The request body has the key %q twice.", d.key)
		}
		return nil, charge.Invalid(charge.CodeInvalidJSON, d.field, "The request body has the key %q twice in %s.", d.key, d.field)
	}
	known := jsonFields(reflect.TypeOf(dst).Elem())
	for k := range obj {
		if _, ok := known[k]; !ok {
			return nil, charge.Invalid(charge.CodeParameterUnknown, k, "Received unknown parameter: %s", k)
		}
	}
	// raw is now known to mean exactly obj: its types are checked by decoding it into dst.
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

// maxBodyDepth bounds nesting as json.Unmarshal does, and the parser's recursion with it.
const maxBodyDepth = 10000

var (
	errCardNumber   = errors.New("card number")
	errTrailingData = errors.New("data after the JSON value")
	errTooDeep      = errors.New("nested too deep")
)

// bodyParser builds the generic form of a body from its tokens: objects, arrays, strings,
// json.Number, bool and nil. It stops at the first key or value that holds a card number
// (errCardNumber) and notes the first duplicate key.
type bodyParser struct {
	dec       *json.Decoder
	duplicate *duplicateKey
}

// duplicateKey is a key found twice in one object: the body (field is the key) or one
// nested in the value of the top-level key field.
type duplicateKey struct {
	field, key string
	nested     bool
}

// value reads the next value; field is the top-level key it is under ("" for the body).
// At the end of the input it returns io.EOF.
func (p *bodyParser) value(depth int, field string) (any, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case string:
		if charge.ContainsCardNumber(tok) {
			return nil, errCardNumber
		}
		return tok, nil
	case json.Number:
		if charge.ContainsCardNumber(string(tok)) {
			return nil, errCardNumber
		}
		return tok, nil
	case json.Delim:
		if depth == maxBodyDepth {
			return nil, errTooDeep
		}
		if tok == '[' {
			return p.array(depth+1, field)
		}
		return p.object(depth+1, field) // Token gives no closing delimiter for a value
	}
	return tok, nil // bool or nil
}

func (p *bodyParser) object(depth int, field string) (any, error) {
	obj := map[string]any{}
	for p.dec.More() {
		tok, err := p.dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string) // the decoder gives keys as strings
		if charge.ContainsCardNumber(key) {
			return nil, errCardNumber
		}
		under := field
		if depth == 1 {
			under = key
		}
		if _, seen := obj[key]; seen && p.duplicate == nil {
			p.duplicate = &duplicateKey{field: under, key: key, nested: depth > 1}
		}
		if obj[key], err = p.value(depth, under); err != nil {
			return nil, noEOF(err)
		}
	}
	_, err := p.dec.Token() // '}'
	return obj, noEOF(err)
}

func (p *bodyParser) array(depth int, field string) (any, error) {
	arr := []any{}
	for p.dec.More() {
		v, err := p.value(depth, field)
		if err != nil {
			return nil, noEOF(err)
		}
		arr = append(arr, v)
	}
	_, err := p.dec.Token() // ']'
	return arr, noEOF(err)
}

// noEOF turns the end of the input inside a value into the syntax error it is.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// loneSurrogate reports whether raw holds a \u escape of half of a UTF-16 surrogate pair
// without its other half, which the decoder would turn into U+FFFD.
func loneSurrogate(raw []byte) bool {
	for i := 0; i+1 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped character: an escaped backslash starts nothing
		if raw[i] != 'u' {
			continue
		}
		switch r := hex4(raw[i+1:]); {
		case r < 0xd800 || r > 0xdfff: // not a surrogate, or no escape (a syntax error)
		case r >= 0xdc00:
			return true // a low half first
		case len(raw) < i+11 || raw[i+5] != '\\' || raw[i+6] != 'u':
			return true
		default:
			if low := hex4(raw[i+7:]); low < 0xdc00 || low > 0xdfff {
				return true
			}
			i += 10
		}
	}
	return false
}

// hex4 returns the value of the four hex digits b starts with, or -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
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
