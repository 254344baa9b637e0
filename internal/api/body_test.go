package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/billing/billing/internal/charge"

	"github.com/billing/billing/internal/charge/cardtest"
)

func TestDecodeStrictCanonical(t *testing.T) {
	t.Parallel()
	var a, b charge.CreateParams
	ca, errA := decodeStrict([]byte(`{"amount": 5, "currency": "usd", "payment_method": "pm_x", "metadata": {"b": "2", "a": "1"}}`), &a)
	cb, errB := decodeStrict([]byte("{\n\"metadata\":{\"a\":\"1\",\"b\":\"2\"},\"payment_method\":\"pm_x\",\"currency\":\"usd\",\"amount\":5}"), &b)
	if errA != nil || errB != nil {
		t.Fatalf("decode: %v %v", errA, errB)
	}
	if string(ca) != string(cb) {
		t.Fatalf("canonical forms differ:\n%s\n%s", ca, cb)
	}
	if *a.Amount != 5 || a.Metadata["a"] != "1" {
		t.Fatalf("decoded %+v", a)
	}
}

const validCharge = `"amount": 1999, "currency": "usd", "payment_method": "pm_card_visa"`

// chargeBodies are bodies of POST /v1/charges through decodeStrict and Validate, with the
// code and param of the answer ("" for accepted).
var chargeBodies = []struct {
	name, body, code, param string
}{
	{"valid", `{` + validCharge + `}`, "", ""},
	{"escaped surrogate pair", `{` + validCharge + `, "description": "\ud83d\ude00 \\ud800"}`, "", ""},
	{"control characters in description and metadata values", `{` + validCharge + `, "description": "a\u0000\n\t\u007f\u0085", "metadata": {"k": "\u0001\r\n"}}`, "", ""},
	{"printable metadata keys", `{` + validCharge + `, "metadata": {"order.id": "1", "$ref": "2", "a b": "3", "\u2028": "4"}}`, "", ""},
	{"digits that are no card", `{` + validCharge + `, "description": "2026-11-25T10:00:00Z 1733500000000 +1 555 0100 5555 +44 20 7946 0958 order 1000000000000008"}`, "", ""},
	{"currency in capitals", `{"amount": 1, "currency": "XCG", "payment_method": "pm_x"}`, "", ""},

	{"not UTF-8", "{" + validCharge + ", \"description\": \"caf\xe9\"}", charge.CodeInvalidJSON, ""},
	{"not UTF-8 in a key", "{" + validCharge + ", \"\xff\": 1}", charge.CodeInvalidJSON, ""},
	{"lone high surrogate", `{` + validCharge + `, "description": "\ud800"}`, charge.CodeInvalidJSON, ""},
	{"lone low surrogate", `{` + validCharge + `, "description": "\udc00\ud800"}`, charge.CodeInvalidJSON, ""},
	{"high surrogate and no low one", `{` + validCharge + `, "description": "\ud800\u0041"}`, charge.CodeInvalidJSON, ""},
	{"high surrogate at the end", `{` + validCharge + `, "description": "\ud800`, charge.CodeInvalidJSON, ""},
	{"lone surrogate in a key", `{` + validCharge + `, "metadata": {"\udfff": "x"}}`, charge.CodeInvalidJSON, ""},
	{"malformed", `{"amount": 1999,`, charge.CodeInvalidJSON, ""},
	{"trailing comma", `{` + validCharge + `,}`, charge.CodeInvalidJSON, ""},
	{"trailing data", `{` + validCharge + `} {}`, charge.CodeInvalidJSON, ""},
	{"trailing garbage", `{` + validCharge + `} x`, charge.CodeInvalidJSON, ""},
	{"not an object", `[1, 2]`, charge.CodeInvalidJSON, ""},
	{"null", `null`, charge.CodeInvalidJSON, ""},
	{"empty", ``, charge.CodeInvalidJSON, ""},
	{"too deep", `{"metadata": ` + strings.Repeat("[", maxBodyDepth+1) + strings.Repeat("]", maxBodyDepth+1) + `}`, charge.CodeInvalidJSON, ""},
	{"duplicate key", `{` + validCharge + `, "amount": 5}`, charge.CodeInvalidJSON, "amount"},
	{"duplicate metadata key", `{` + validCharge + `, "metadata": {"a": "1", "a": "1"}}`, charge.CodeInvalidJSON, "metadata"},
	{"duplicate deep down", `{"x": [{"a": {"b": 1, "b": 2}}]}`, charge.CodeInvalidJSON, "x"},
	{"duplicate named as its field", `{"metadata": {"metadata": "1", "metadata": "2"}}`, charge.CodeInvalidJSON, "metadata"},
	{"duplicate before unknown", `{"x": 1, "x": 2}`, charge.CodeInvalidJSON, "x"},

	{"card", `{` + validCharge + `, "description": "4242424242424242"}`, charge.CodeRawCardDataRejected, ""},
	{"card with two spaces", `{` + validCharge + `, "description": "4242  4242  4242  4242"}`, charge.CodeRawCardDataRejected, ""},
	{"card with mixed separators", `{` + validCharge + `, "customer": "4242 -/_.4242...4242__4242"}`, charge.CodeRawCardDataRejected, ""},
	{"card with tabs", `{` + validCharge + `, "description": "4242\t4242\t4242\t4242"}`, charge.CodeRawCardDataRejected, ""},
	{"card after digits", `{` + validCharge + `, "description": "order 12 4242 4242 4242 4242"}`, charge.CodeRawCardDataRejected, ""},
	{"card in a metadata key", `{` + validCharge + `, "metadata": {"5555.5555.5555.4444": "x"}}`, charge.CodeRawCardDataRejected, ""},
	{"card in a metadata value", `{` + validCharge + `, "metadata": {"k": "3782 822463 10005"}}`, charge.CodeRawCardDataRejected, ""},
	{"card in the first of duplicate keys", `{` + validCharge + `, "description": "4242 4242 4242 4242", "description": "ok"}`, charge.CodeRawCardDataRejected, ""},
	{"card after a duplicate key", `{` + validCharge + `, "amount": 5, "x": "4242424242424242"}`, charge.CodeRawCardDataRejected, ""},
	{"card in an unknown field", `{` + validCharge + `, "card": {"number": ["6011-1111-1111-1117"]}}`, charge.CodeRawCardDataRejected, ""},
	{"card as a number", `{` + validCharge + `, "card": 4000056655665556}`, charge.CodeRawCardDataRejected, ""},
	{"card as a payment method", `{"amount": 1999, "currency": "usd", "payment_method": "378282246310005"}`, charge.CodeRawCardDataRejected, ""},
	{"card escaped", `{` + validCharge + `, "description": "\u0034242\u00a04242\u00a04242\u00a04242"}`, charge.CodeRawCardDataRejected, ""},
	{"card after the body", `{` + validCharge + `} "4242424242424242"`, charge.CodeRawCardDataRejected, ""},
	{"card before a syntax error", `{` + validCharge + `, "description": "4242424242424242",}`, charge.CodeRawCardDataRejected, ""},

	{"unknown field", `{` + validCharge + `, "note": 1}`, charge.CodeParameterUnknown, "note"},
	{"wrong type", `{"amount": "x"}`, charge.CodeParameterInvalid, "amount"},
	{"huge amount", `{"amount": 1e400}`, charge.CodeParameterInvalid, "amount"},
	{"control character in customer", `{` + validCharge + `, "customer": "cus\n1"}`, charge.CodeParameterInvalid, "customer"},
	{"C1 control in customer", `{` + validCharge + `, "customer": "cus\u00851"}`, charge.CodeParameterInvalid, "customer"},
	{"control character in a metadata key", `{` + validCharge + `, "metadata": {"a\u0000": "x"}}`, charge.CodeParameterInvalid, "metadata"},
	{"control character in currency", `{"amount": 1, "currency": "us\u0000", "payment_method": "pm_x"}`, charge.CodeParameterInvalid, "currency"},
	{"control character in payment method", `{"amount": 1, "currency": "usd", "payment_method": "pm_x\t"}`, charge.CodeParameterInvalid, "payment_method"},
	{"no currency", `{"amount": 1, "currency": "xxx", "payment_method": "pm_x"}`, charge.CodeParameterInvalid, "currency"},
	{"test currency", `{"amount": 1, "currency": "XTS", "payment_method": "pm_x"}`, charge.CodeParameterInvalid, "currency"},
	{"gold", `{"amount": 1, "currency": "xau", "payment_method": "pm_x"}`, charge.CodeParameterInvalid, "currency"},
	{"fund", `{"amount": 1, "currency": "bov", "payment_method": "pm_x"}`, charge.CodeParameterInvalid, "currency"},
	{"withdrawn currency", `{"amount": 1, "currency": "hrk", "payment_method": "pm_x"}`, charge.CodeParameterInvalid, "currency"},
}

// requestPath is what the server does with the body of POST /v1/charges before it is
// stored: decode, then validate.
func requestPath(raw []byte) ([]byte, *charge.CreateParams, *charge.InvalidRequestError) {
	var p charge.CreateParams
	canonical, invalid := decodeStrict(raw, &p)
	if invalid == nil {
		invalid = p.Validate()
	}
	return canonical, &p, invalid
}

func TestRequestPath(t *testing.T) {
	t.Parallel()
	for _, tc := range chargeBodies {
		_, _, invalid := requestPath([]byte(tc.body))
		switch {
		case tc.code == "" && invalid != nil:
			t.Errorf("%s: unexpected %v", tc.name, invalid)
		case tc.code != "" && (invalid == nil || invalid.Code != tc.code || invalid.Param != tc.param):
			t.Errorf("%s: got %v, want %s (%s)", tc.name, invalid, tc.code, tc.param)
		}
	}
}

// FuzzDecodeCharge drives the request path (decodeStrict, then Validate) with arbitrary
// bodies. It must never panic; what it accepts must be valid UTF-8 without duplicate keys,
// hold no card number (by a brute-force oracle) nor control characters outside the
// description and metadata values, and have a canonical form that decodes to the same
// parameters. And a brand's number, cut into groups by any separators and put anywhere in
// a body, must always be refused as raw card data.
func FuzzDecodeCharge(f *testing.F) {
	for _, tc := range chargeBodies {
		f.Add([]byte(tc.body), uint8(0), uint8(0), uint32(0), []byte(nil))
	}
	f.Add([]byte(`{"a": {"b": [1, {"c": null}]}}`), uint8(3), uint8(1), uint32(0b100010001000), []byte{1, 2, 3})
	f.Add([]byte(`{"description": "\u0000\ud800"}`), uint8(7), uint8(2), uint32(0xffff), []byte{0, 9, 17})
	f.Fuzz(func(t *testing.T, raw []byte, place, card uint8, cuts uint32, seps []byte) {
		canonical, p, invalid := requestPath(raw)
		if invalid != nil && invalid.Code == "" {
			t.Fatalf("problem without a code for %q", raw)
		}
		if invalid == nil {
			checkAccepted(t, raw, canonical, p)
		} else if invalid.Code != charge.CodeRawCardDataRejected && json.Valid(raw) && utf8.Valid(raw) && !loneSurrogate(raw) {
			// Card data first: a body that could be read is refused for it whatever else is wrong.
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			_ = walkJSON(dec, 0, "", func(s string, _, _ bool) {
				if cardtest.Contains(s) {
					t.Fatalf("%q refused with %v, not for its card number", raw, invalid)
				}
			}, nil)
		}

		body := cardBody(place, card, cuts, seps)
		if _, _, invalid := requestPath(body); invalid == nil || invalid.Code != charge.CodeRawCardDataRejected {
			t.Fatalf("card number in %s not refused as raw card data: %v", body, invalid)
		}
	})
}

// checkAccepted checks what the request path accepted against the contract.
func checkAccepted(t *testing.T, raw, canonical []byte, p *charge.CreateParams) {
	t.Helper()
	if !utf8.Valid(raw) {
		t.Fatalf("accepted a body that is not UTF-8: %q", raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	duplicate := false
	if err := walkJSON(dec, 0, "", func(s string, number, free bool) {
		if cardtest.Contains(s) {
			t.Fatalf("accepted the card number in %q", raw)
		}
		if !free && strings.ContainsFunc(s, unicode.IsControl) {
			t.Fatalf("accepted the control character in %q of %q", s, raw)
		}
	}, &duplicate); err != nil || duplicate {
		t.Fatalf("accepted %q: %v (duplicate key: %v)", raw, err, duplicate)
	}
	if !json.Valid(canonical) {
		t.Fatalf("canonical form %q of %q is not JSON", canonical, raw)
	}
	var again charge.CreateParams
	if _, invalid := decodeStrict(canonical, &again); invalid != nil {
		t.Fatalf("canonical form %q rejected: %v", canonical, invalid)
	}
	a, _ := json.Marshal(p)
	b, _ := json.Marshal(&again)
	if !bytes.Equal(a, b) {
		t.Fatalf("canonical form %q decodes to %s, the body to %s", canonical, b, a)
	}
}

// walkJSON visits every key, string and number of a value, telling whether control
// characters are allowed in it (the top-level description, metadata values), and sets
// *duplicate, if not nil, when an object has a key twice.
func walkJSON(dec *json.Decoder, depth int, field string, visit func(s string, number, free bool), duplicate *bool) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok := tok.(type) {
	case string:
		visit(tok, false, depth == 1 && field == "description" || depth == 2 && field == "metadata")
	case json.Number:
		visit(string(tok), true, false)
	case json.Delim:
		seen := map[string]bool{}
		for dec.More() {
			if tok == '{' {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] && duplicate != nil {
					*duplicate = true
				}
				seen[key] = true
				visit(key, false, false)
				if depth == 0 {
					field = key
				}
			}
			if err := walkJSON(dec, depth+1, field, visit, duplicate); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
	}
	if depth == 0 {
		if _, err := dec.Token(); err != io.EOF {
			return errors.New("data after the value")
		}
	}
	return nil
}

// fuzzCards are test numbers of several brands.
var fuzzCards = []string{"4242424242424242", "5555555555554444", "378282246310005", "6011111111111117", "3566002020360505", "4222222222222"}

// fuzzSeparators go between groups of digits; JSON escapes those that need it.
var fuzzSeparators = []string{
	" ", "  ", "-", " - ", "\t", ".", "/", "_", "\n", "\r\n", "\x00", "\u0085", "\"", "\\", ",", ":",
	"\u00a0", "\u2014", "\u2028", "\u3000", "...", " -/_.", "#", "*", "<>", "&",
}

// cardBody is a charge body with a card number, cut into groups (a bit of cuts set: a cut
// after that digit) by separators chosen by seps, at one of several places.
func cardBody(place, card uint8, cuts uint32, seps []byte) []byte {
	if len(seps) == 0 {
		seps = []byte{0}
	}
	sep := func(i int) string { return fuzzSeparators[int(seps[i%len(seps)])%len(fuzzSeparators)] }
	number := fuzzCards[int(card)%len(fuzzCards)]
	var b strings.Builder
	b.WriteString("order 12" + sep(0))
	for i := range len(number) {
		b.WriteByte(number[i])
		if i < len(number)-1 && cuts&(1<<i) != 0 {
			b.WriteString(sep(i + 1))
		}
	}
	b.WriteString(sep(len(number)) + "thanks")
	q, _ := json.Marshal(b.String())
	s := string(q)
	var body string
	switch place % 10 {
	case 0:
		body = `{` + validCharge + `, "description": ` + s + `}`
	case 1:
		body = `{` + validCharge + `, "metadata": {"k": ` + s + `}}`
	case 2:
		body = `{` + validCharge + `, "metadata": {` + s + `: "v"}}`
	case 3:
		body = `{` + validCharge + `, "customer": ` + s + `}`
	case 4:
		body = `{"description": ` + s + `, ` + validCharge + `, "description": "ok"}`
	case 5:
		body = `{` + validCharge + `, "card": {"number": [1, ` + s + `]}}`
	case 6:
		body = `{"amount": 1, "currency": ` + s + `, "payment_method": "pm_x"}`
	case 7:
		body = `{` + validCharge + `} ` + s
	case 8:
		body = `{` + s + `: 1}`
	default:
		body = `{"amount": "x", "payment_method": ` + s + `, "metadata": {"a": "1", "a": "2"}}`
	}
	return []byte(body)
}
