package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/api"
	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/service"
	"github.com/billing/billing/internal/storetest"
)

// testCards are the processors' published test numbers of every brand the API must
// recognise.
var testCards = []struct{ brand, number string }{
	{"visa", "4242424242424242"},
	{"mastercard", "5555555555554444"},
	{"mastercard 2-series", "2223003122003222"},
	{"amex", "378282246310005"},
	{"discover", "6011111111111117"},
	{"jcb", "3566002020360505"},
	{"diners", "30569309025904"},
	{"unionpay", "6200000000000005"},
}

// cardSeparators put something between the groups of four digits of a card number; sep(i)
// is what goes before group i (from 1).
var cardSeparators = []struct {
	name string
	sep  func(i int) string
}{
	{"two spaces", func(int) string { return "  " }},
	{"spaced dash", func(int) string { return " - " }},
	{"tab", func(int) string { return "\t" }},
	{"dots", func(int) string { return "." }},
	{"slashes", func(int) string { return "/" }},
	{"underscores", func(int) string { return "_" }},
	{"mixed", func(i int) string { return []string{" -", "./", "_ ", "--"}[i%4] }},
	{"other symbols", func(i int) string { return []string{"#", "*", "|", "~"}[i%4] }},
	{"unicode punctuation", func(i int) string { return []string{"\u00a0", "·", "—", "\u2009"}[i%4] }},
}

// grouped writes number in groups of four with sep between them.
func grouped(number string, sep func(int) string) string {
	var b strings.Builder
	for i := 0; i*4 < len(number); i++ {
		if i > 0 {
			b.WriteString(sep(i))
		}
		b.WriteString(number[i*4 : min(i*4+4, len(number))])
	}
	return b.String()
}

// luhn appends the Luhn check digit to digits.
func luhn(digits string) string {
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if (len(digits)-1-i)%2 == 0 { // doubled: the check digit will be to its right
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return digits + strconv.Itoa((10-sum%10)%10)
}

func luhnValid(number string) bool {
	return luhn(number[:len(number)-1]) == number
}

// js is s as a JSON string literal.
func js(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// cardMarkers are the forms in which a card number sent as sent could show up in a log,
// a stream or a document: as sent, its digits alone, escaped as JSON and as a quoted Go
// string (slog's text handler).
func cardMarkers(sent string) []string {
	digits := strings.Map(func(r rune) rune {
		if v, ok := fullwidthDigit(r); ok {
			return v
		}
		if '0' <= r && r <= '9' {
			return r
		}
		return -1
	}, sent)
	quoted := strconv.Quote(sent)
	return []string{sent, digits, strings.Trim(js(sent), `"`), quoted[1 : len(quoted)-1]}
}

func fullwidthDigit(r rune) (rune, bool) {
	if '０' <= r && r <= '９' {
		return '0' + (r - '０'), true
	}
	return 0, false
}

// badInput is one request of the table: what it sends and how it must be answered. A
// refused request's markers must reach no log, stream or store.
type badInput struct {
	name    string
	method  string // default POST
	path    string // default /v1/charges
	body    string
	headers []string
	chunked bool // send the body without a Content-Length
	status  int
	code    string
	param   string
	markers []string
}

func TestBadInputsAreRefusedAtTheEdge(t *testing.T) {
	t.Parallel()
	s, logs := startSystemWithLogs(t, func(c *config.Config) { c.RateBurst = 100_000 })
	merchant := "merchant_bad_input"
	tok := s.token(merchant)

	// An endpoint to PATCH; its description is a marker that must be found in the store.
	endpoint := s.createEndpoint(tok, `{"url": "`+hookURL+`", "enabled_events": ["*"], "description": "endpoint-kept-1"}`)
	endpointPath := "/v1/webhook_endpoints/" + endpoint["id"].(string)

	var rows []badInput
	tags := 0
	// tag returns a string that appears nowhere else: it marks one refused request.
	tag := func() string {
		tags++
		return fmt.Sprintf("zmark%c%cz", 'a'+tags/26, 'a'+tags%26)
	}
	valid := func(extra ...string) string { return chargeBody(1000, "pm_card_visa", extra...) }
	refuse := func(name, body string, status int, code, param string, markers ...string) badInput {
		return badInput{name: name, body: body, status: status, code: code, param: param, markers: markers}
	}
	// cardIn puts text, holding a card, into one field of a charge.
	cardIn := []struct {
		name string
		body func(tag, text string) string
	}{
		{"description", func(tag, text string) string { return valid(`"description": ` + js(tag+" "+text)) }},
		{"customer", func(tag, text string) string { return valid(`"customer": ` + js(tag+" "+text)) }},
		{"metadata key", func(tag, text string) string {
			return valid(`"description": `+js(tag), `"metadata": {`+js(text)+`: "v"}`)
		}},
		{"metadata value", func(tag, text string) string { return valid(`"metadata": {"note": ` + js(tag+" "+text) + `}`) }},
	}

	// Card numbers: every brand with every separator, in each field in turn (so every
	// separator in every field); then every brand as plain digits.
	for si, sep := range cardSeparators {
		for bi, c := range testCards {
			require.True(t, luhnValid(c.number), "%s: the test's Luhn is wrong", c.number)
			field := cardIn[(si+bi)%len(cardIn)]
			text, tg := grouped(c.number, sep.sep), tag()
			rows = append(rows, refuse(fmt.Sprintf("card %s with %s in %s", c.brand, sep.name, field.name),
				field.body(tg, text), 400, "raw_card_data_rejected", "", append(cardMarkers(text), tg)...))
		}
	}
	for k, c := range testCards {
		field := cardIn[k%len(cardIn)]
		tg := tag()
		rows = append(rows, refuse(fmt.Sprintf("card %s in %s", c.brand, field.name),
			field.body(tg, c.number), 400, "raw_card_data_rejected", "", append(cardMarkers(c.number), tg)...))
	}
	visa13, visa19 := "4222222222222", luhn("411111111111111111")
	fullwidth := "４２４２ ４２４２ ４２４２ ４２４２"
	for _, r := range []struct{ name, text string }{
		{"card visa of 13 digits", visa13},
		{"card visa of 19 digits", grouped(visa19, func(int) string { return " " })},
		{"card behind other digits", "order 12 4242 4242 4242 4242 qty 3"},
		{"card in fullwidth digits", fullwidth},
	} {
		tg := tag()
		rows = append(rows, refuse(r.name, cardIn[0].body(tg, r.text), 400, "raw_card_data_rejected", "",
			append(cardMarkers(r.text), tg)...))
	}
	{
		tg := tag()
		rows = append(rows,
			refuse("card in a payment method token", `{"amount": 1000, "currency": "usd", "payment_method": "pm_5555555555554444", "description": `+js(tg)+`}`,
				400, "raw_card_data_rejected", "", tg, "5555555555554444"))
		tg = tag()
		rows = append(rows,
			refuse("card as a number in exponent form", `{"amount": 6.011111111111117e15, "currency": "usd", "payment_method": "pm_card_visa", "description": `+js(tg)+`}`,
				400, "raw_card_data_rejected", "", tg, "6.011111111111117e15", "6011111111111117"))
		tg = tag()
		rows = append(rows,
			refuse("card deep in an unknown field", valid(`"description": `+js(tg), `"extra": {"deep": [{"x": "3566-0020-2036-0505"}]}`),
				400, "raw_card_data_rejected", "", tg, "3566-0020-2036-0505", "3566002020360505"))
		tg = tag()
		rows = append(rows,
			refuse("card in an array in metadata", valid(`"description": `+js(tg), `"metadata": {"cards": ["3782 822463 10005"]}`),
				400, "raw_card_data_rejected", "", tg, "3782 822463 10005", "378282246310005"))
		tg = tag()
		rows = append(rows,
			refuse("card in the first of two description keys", `{"description": "`+tg+` 6011 1111 1111 1117", "description": "fine", "amount": 1000, "currency": "usd", "payment_method": "pm_card_visa"}`,
				400, "raw_card_data_rejected", "", tg, "6011 1111 1111 1117", "6011111111111117"))
		tg = tag()
		rows = append(rows,
			refuse("card in trailing data", valid(`"description": `+js(tg))+` {"n": "3056 930902 5904"}`,
				400, "raw_card_data_rejected", "", tg, "3056 930902 5904", "30569309025904"))
		tg = tag()
		rows = append(rows,
			refuse("card in a refund reason", `{"charge": "`+charge0ID+`", "amount": 1, "reason": "`+tg+` 6200 0000 0000 0005"}`,
				400, "raw_card_data_rejected", "", tg, "6200 0000 0000 0005", "6200000000000005"))
		rows[len(rows)-1].path = "/v1/refunds"
		tg = tag()
		rows = append(rows, badInput{name: "card in a webhook endpoint description", path: "/v1/webhook_endpoints",
			body:   `{"url": "` + hookURL + `", "enabled_events": ["*"], "description": "` + tg + ` 2223.0031.2200.3222"}`,
			status: 400, code: "raw_card_data_rejected", markers: []string{tg, "2223.0031.2200.3222", "2223003122003222"}})
	}

	// Nested metadata, text that is not UTF-8, control characters, unknown fields, wrong
	// types. A body that starts with "{" is whole; otherwise it is added to a valid charge.
	for _, r := range []struct{ name, body, code, param string }{
		{"metadata value an object", `"metadata": {"order": {"id": "%s"}}`, "parameter_invalid", "metadata"},
		{"metadata value an array", `"metadata": {"tags": ["%s"]}`, "parameter_invalid", "metadata"},
		{"metadata value a bool", `"metadata": {"%s": true}`, "parameter_invalid", "metadata"},
		{"metadata an array", `"metadata": ["%s"]`, "parameter_invalid", "metadata"},
		{"metadata a string", `"metadata": "%s"`, "parameter_invalid", "metadata"},
		{"duplicate metadata key", `"metadata": {"k": "%s", "k": "v"}`, "invalid_json", "metadata"},
		{"invalid UTF-8 in description", `"description": "%s caf` + "\xe9" + `"`, "invalid_json", ""},
		{"invalid UTF-8 in a metadata key", `"metadata": {"k` + "\xff\xfe" + `": "%s"}`, "invalid_json", ""},
		{"truncated UTF-8 sequence", `"customer": "%s ` + "\xe2\x82" + `"`, "invalid_json", ""},
		{"overlong UTF-8 encoding", `"customer": "%s ` + "\xc0\xaf" + `"`, "invalid_json", ""},
		{"UTF-8 encoded surrogate", `"customer": "%s ` + "\xed\xa0\x80" + `"`, "invalid_json", ""},
		{"lone high surrogate", `"description": "%s \ud800"`, "invalid_json", ""},
		{"lone low surrogate", `"description": "%s \udc00"`, "invalid_json", ""},
		{"high surrogate then no low", `"description": "%s \ud800\u0041"`, "invalid_json", ""},
		{"lone surrogate in a metadata key", `"metadata": {"\udbff": "%s"}`, "invalid_json", ""},
		{"bell in customer", `"customer": "%s\u0007"`, "parameter_invalid", "customer"},
		{"escape in customer", `"customer": "%s\u001b[31m"`, "parameter_invalid", "customer"},
		{"raw DEL in customer", `"customer": "%s` + "\x7f" + `"`, "parameter_invalid", "customer"},
		{"C1 control in customer", `"customer": "%s` + "\u0085" + `"`, "parameter_invalid", "customer"},
		{"NUL in a metadata key", `"metadata": {"%s\u0000": "v"}`, "parameter_invalid", "metadata"},
		{"newline in a metadata key", `"metadata": {"%s\n": "v"}`, "parameter_invalid", "metadata"},
		{"raw DEL in a metadata key", `"metadata": {"%s` + "\x7f" + `": "v"}`, "parameter_invalid", "metadata"},
		{"C1 control in a metadata key", `"metadata": {"%s` + "\u009b" + `": "v"}`, "parameter_invalid", "metadata"},
		{"unknown field", `"shipping": {"note": "%s"}`, "parameter_unknown", "shipping"},
		{"field in another case", `"Amount": 99999, "description": "%s"`, "parameter_unknown", "Amount"},
		{"amount a bool", `{"description": "%s", "amount": true, "currency": "usd", "payment_method": "pm_card_visa"}`, "parameter_invalid", "amount"},
		{"amount in exponent form", `{"description": "%s", "amount": 1e3, "currency": "usd", "payment_method": "pm_card_visa"}`, "parameter_invalid", "amount"},
		{"amount an object", `{"description": "%s", "amount": {"value": 1000}, "currency": "usd", "payment_method": "pm_card_visa"}`, "parameter_invalid", "amount"},
		{"currency a number", `{"description": "%s", "amount": 1000, "currency": 840, "payment_method": "pm_card_visa"}`, "parameter_invalid", "currency"},
		{"payment method an array", `{"description": "%s", "amount": 1000, "currency": "usd", "payment_method": ["pm_card_visa"]}`, "parameter_invalid", "payment_method"},
		{"capture a number", `"description": "%s", "capture": 1`, "parameter_invalid", "capture"},
		{"description a number", `"customer": "%s", "description": 5`, "parameter_invalid", "description"},
		{"customer an object", `"description": "%s", "customer": {"id": "cus_1"}`, "parameter_invalid", "customer"},
	} {
		tg := tag()
		body := fmt.Sprintf(r.body, tg)
		if !strings.HasPrefix(body, "{") {
			body = valid(body)
		}
		rows = append(rows, refuse(r.name, body, 400, r.code, r.param, tg))
	}
	{
		tg := tag()
		rows = append(rows, refuse("duplicate amount", `{"amount": 100, "amount": 99999, "currency": "usd", "payment_method": "pm_card_visa", "description": "`+tg+`"}`,
			400, "invalid_json", "amount", tg))
		tg = tag()
		rows = append(rows, refuse("duplicate description, both fine", `{"description": "`+tg+`", "description": "`+tg+`", "amount": 1000, "currency": "usd", "payment_method": "pm_card_visa"}`,
			400, "invalid_json", "description", tg))
	}

	// Every currency that is no active currency.
	for _, code := range []string{
		"xxx", "xts", "xau", "xag", "xpd", "xpt", "xdr", "xba", "xbb", "xbc", "xbd", "xsu", "xua",
		"bov", "che", "chw", "clf", "cou", "mxv", "usn", "uyi", "uyw",
		"XAU", "Xts", "hrk",
	} {
		tg := tag()
		rows = append(rows, refuse("currency "+code, `{"amount": 1000, "currency": "`+code+`", "payment_method": "pm_card_visa", "description": "`+tg+`"}`,
			400, "parameter_invalid", "currency", tg))
	}

	// Trailing data.
	for _, r := range []struct{ name, after string }{
		{"trailing letter", `x`},
		{"trailing bracket", `]`},
		{"trailing second body", ` ` + valid()},
		{"trailing NUL", "\x00"},
		{"trailing number", ` 1`},
	} {
		tg := tag()
		rows = append(rows, refuse(r.name, valid(`"description": "`+tg+`"`)+r.after, 400, "invalid_json", "", tg))
	}

	// Size and content type.
	{
		tg := tag()
		rows = append(rows, refuse("body too large", valid(`"description": "`+tg+strings.Repeat("x", 70<<10)+`"`), 413, "body_too_large", "", tg))
		tg = tag()
		r := refuse("body too large, chunked", valid(`"description": "`+tg+`"`, `"metadata": {"k": "`+strings.Repeat("y", 70<<10)+`"}`), 413, "body_too_large", "", tg)
		r.chunked = true
		rows = append(rows, r)
		tg = tag()
		body := valid(`"description": "` + tg + `"`)
		rows = append(rows, refuse("body one byte over 64 KiB", body+strings.Repeat(" ", api.MaxBodyBytes+1-len(body)), 413, "body_too_large", "", tg))
		tg = tag()
		rows = append(rows, refuse("body too large with a card", valid(`"description": "`+tg+` 4242 4242 4242 4242`+strings.Repeat(" ", 70<<10)+`"`),
			413, "body_too_large", "", tg))
		for _, ct := range []string{"application/xml", "", "multipart/form-data; boundary=x", "application/jsonx", "application/json-patch+json"} {
			tg := tag()
			r := refuse("content type "+strconv.Quote(ct), valid(`"description": "`+tg+`"`), 415, "unsupported_media_type", "", tg)
			r.headers = []string{"Content-Type", ct}
			rows = append(rows, r)
		}
	}

	// Webhook endpoints: control characters in the URL. (A description may hold them, as
	// a charge's may: docs/api.md refuses them outside descriptions and metadata values.)
	for _, r := range []struct{ name, url, description, param string }{
		{"endpoint url with a C0 control", hookURL + "/%s\u0001", "d", "url"},
		{"endpoint url with a tab", hookURL + "/%s\t", "d", "url"},
		{"endpoint url with a newline", hookURL + "/%s\nX-Injected: 1", "d", "url"},
		{"endpoint url with DEL", hookURL + "/%s\u007f", "d", "url"},
		{"endpoint url with a C1 control", hookURL + "/%s\u0085", "d", "url"},
		{"endpoint url with CSI", hookURL + "/%s\u009b", "d", "url"},
	} {
		tg := tag()
		u, d := r.url, r.description
		if strings.Contains(u, "%s") {
			u = fmt.Sprintf(u, tg)
		} else {
			d = fmt.Sprintf(d, tg)
		}
		body := `{"url": ` + js(u) + `, "enabled_events": ["*"], "description": ` + js(d) + `}`
		rows = append(rows, badInput{name: r.name, path: "/v1/webhook_endpoints", body: body,
			status: 400, code: "parameter_invalid", param: r.param, markers: []string{tg}})
		patch := `{"url": ` + js(u) + `}`
		if r.param == "description" {
			patch = `{"description": ` + js(d) + `}`
		}
		rows = append(rows, badInput{name: r.name + ", patched", method: "PATCH", path: endpointPath, body: patch,
			status: 400, code: "parameter_invalid", param: r.param, markers: []string{tg}})
	}

	// Rows that must pass. Their texts must reach the store.
	orderNumber := luhn("123456789012345")
	order9 := luhn("912345678901234")
	require.True(t, luhnValid(orderNumber) && luhnValid(order9))
	require.False(t, luhnValid("4242424242424241"))
	padded := valid(`"description": "exactly 64 KiB"`)
	padded += strings.Repeat(" ", api.MaxBodyBytes-len(padded))
	pass := []badInput{
		{name: "timestamp", body: valid(`"description": "2026-12-06T10:00:00Z 1733500000000"`)},
		{name: "phone number", body: valid(`"customer": "+1 555 0100 5555"`)},
		{name: "order number without a brand prefix", body: valid(`"metadata": {"order": "order ` + orderNumber + `"}`)},
		{name: "order number starting with 9", body: valid(`"description": "order ` + grouped(order9, func(int) string { return " " }) + `"`)},
		{name: "visa prefix failing luhn", body: valid(`"description": "ref 4242424242424241"`)},
		{name: "metadata keys of every shape", body: valid(`"metadata": {"$where": "1", "a.b": "2", "$set": "3", "order.id": "4", "a b": "5"}`)},
		{name: "control characters in description and metadata values", body: valid(`"description": "line one\nline two\ttab\u0085 nul\u0000", "metadata": {"note": "bell\u0007 esc\u001b del` + "\x7f" + ` nul\u0000"}`)},
		{name: "content type with charset", body: valid(`"description": "charset utf-8"`), headers: []string{"Content-Type", "application/json; charset=utf-8"}},
		{name: "content type in capitals", body: valid(`"description": "capitals"`), headers: []string{"Content-Type", "Application/JSON"}},
		{name: "body of exactly 64 KiB", body: padded},
		{name: "body of exactly 64 KiB, chunked", body: padded, chunked: true},
	}
	for i := range pass {
		pass[i].status = http.StatusAccepted
	}
	rows = append(rows, pass...)

	// Every refused row has a marker of its own (its tag, first or last); none is in a
	// passing row.
	names := map[string]bool{}
	for _, r := range rows {
		require.False(t, names[r.name], "two rows named %q", r.name)
		names[r.name] = true
		if r.status < 300 {
			continue
		}
		require.NotEmpty(t, r.markers, r.name)
		for _, p := range pass {
			for _, m := range r.markers {
				require.NotContains(t, p.body, m, "passing row %q holds a marker of %q", p.name, r.name)
			}
		}
	}

	var accepted []string
	sent := map[string]map[string]any{} // the passing rows' bodies, by charge id
	refused := 0
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			r := sendInput(t, s, tok, tc)
			if r.status == http.StatusAccepted && cmpOr(tc.path, "/v1/charges") == "/v1/charges" {
				// Settled and searched below, whether it should have been accepted or not.
				c := r.json(t)
				require.Equal(t, "pending", c["status"])
				accepted = append(accepted, c["id"].(string))
			}
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			require.Regexp(t, `^req_[0-9a-f]{24}$`, r.header.Get("X-Request-Id"))
			if tc.status < 300 {
				var body map[string]any
				require.NoError(t, json.Unmarshal([]byte(tc.body), &body))
				sent[r.json(t)["id"].(string)] = body
				return
			}
			refused++
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
			var p map[string]any
			require.NoError(t, json.Unmarshal(r.body, &p), "body: %s", r.body)
			require.Equal(t, "about:blank", p["type"])
			require.Equal(t, http.StatusText(tc.status), p["title"])
			require.EqualValues(t, tc.status, p["status"])
			require.Equal(t, tc.code, p["code"], "body: %s", r.body)
			require.NotEmpty(t, p["detail"])
			if tc.param == "" {
				require.NotContains(t, p, "param", "body: %s", r.body)
			} else {
				require.Equal(t, tc.param, p["param"], "body: %s", r.body)
			}
			for _, m := range tc.markers {
				require.NotContains(t, string(r.body), m, "the answer echoes the request")
			}
		})
	}
	// Everything accepted settles before the system is searched.
	for _, id := range accepted {
		c := s.settle(tok, id)
		require.Equal(t, "succeeded", c["status"], "charge %s", id)
		if body, ok := sent[id]; ok {
			// What passes comes back exactly as sent.
			for _, field := range []string{"description", "customer", "metadata"} {
				if want, ok := body[field]; ok {
					require.Equal(t, want, c[field], "%s of %s", field, id)
				}
			}
		}
	}
	pollUntil(t, 30*time.Second, "every accepted charge has its charge.succeeded event", func() bool {
		return len(listAll(t, s, tok, "/v1/events?type=charge.succeeded")) == len(accepted)
	})

	sources := map[string]string{}
	sources["logs"] = logs.String()
	streamMsgs, kv := readJetStream(t, s.cfg.NATSURL)
	maps := func(name string, m map[string]string) {
		for k, v := range m {
			sources[name+" "+k] = v
		}
	}
	maps("stream", streamMsgs)
	maps("IDEMPOTENCY", kv)
	for _, path := range []string{"/v1/charges", "/v1/events", "/v1/webhook_endpoints"} {
		for i, body := range listAll(t, s, tok, path) {
			sources[fmt.Sprintf("GET %s [%d]", path, i)] = body
		}
	}
	maps("store", storeDocuments(t, s.cfg))

	// The searches see what they search: the request log lines are there, and so are the
	// passing requests' texts in the idempotency records, the events and the store.
	require.GreaterOrEqual(t, strings.Count(sources["logs"], "msg=request "), refused+len(accepted))
	require.Contains(t, sources["logs"], "status=400")
	for _, want := range []struct{ prefix, text string }{
		{"IDEMPOTENCY ", "+1 555 0100 5555"},
		{"stream EVENTS", "+1 555 0100 5555"},
		{"stream EVENTS", "order " + orderNumber},
		{"GET /v1/charges ", "order.id"},
		{"GET /v1/events ", "2026-12-06T10:00:00Z 1733500000000"},
		{"GET /v1/webhook_endpoints ", "endpoint-kept-1"},
		{"store ", "+1 555 0100 5555"},
		{"store ", "endpoint-kept-1"},
	} {
		found := false
		for name, text := range sources {
			found = found || strings.HasPrefix(name, want.prefix) && strings.Contains(text, want.text)
		}
		require.True(t, found, "%q not found in %s*: the search would miss a leak", want.text, want.prefix)
	}

	markers := map[string][]string{} // the rows of each marker (a card number's digits are several rows')
	for _, tc := range rows {
		for _, m := range tc.markers {
			if !slices.Contains(markers[m], tc.name) {
				markers[m] = append(markers[m], tc.name)
			}
		}
	}
	for m, of := range markers {
		for name, text := range sources {
			if strings.Contains(text, m) {
				t.Errorf("%q (of %q) reached %s: %s", m, of, name, excerpt(text, m))
			}
		}
	}
}

// charge0ID is a well-formed charge id that no merchant has.
const charge0ID = "ch_01jdx8q4kcf0wt9a5y0s7m2n3p"

// sendInput sends tc as merchant token's request.
func sendInput(t *testing.T, s *system, token string, tc badInput) response {
	t.Helper()
	method, path := cmpOr(tc.method, "POST"), cmpOr(tc.path, "/v1/charges")
	var body io.Reader = strings.NewReader(tc.body)
	if tc.chunked {
		body = io.MultiReader(strings.NewReader(tc.body)) // no length known: chunked
	}
	req, err := http.NewRequest(method, s.base+path, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if method == "POST" {
		req.Header.Set("Idempotency-Key", newKey())
	}
	for i := 0; i+1 < len(tc.headers); i += 2 {
		req.Header.Set(tc.headers[i], tc.headers[i+1])
	}
	if tc.chunked {
		require.EqualValues(t, 0, req.ContentLength)
	}
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// listAll returns every item of a list route, as JSON, following has_more.
func listAll(t *testing.T, s *system, token, path string) []string {
	t.Helper()
	var out []string
	after := ""
	for {
		u, err := url.Parse(path)
		require.NoError(t, err)
		q := u.Query()
		q.Set("limit", "100")
		if after != "" {
			q.Set("starting_after", after)
		}
		u.RawQuery = q.Encode()
		r := s.do("GET", u.String(), token, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		var l struct {
			Data    []json.RawMessage `json:"data"`
			HasMore bool              `json:"has_more"`
		}
		require.NoError(t, json.Unmarshal(r.body, &l))
		for _, d := range l.Data {
			out = append(out, string(d))
			var item struct{ ID string }
			require.NoError(t, json.Unmarshal(d, &item))
			after = item.ID
		}
		if !l.HasMore || len(l.Data) == 0 {
			return out
		}
	}
}

// readJetStream returns every message left in every stream (by stream and sequence, with
// its headers) and every record of the IDEMPOTENCY bucket (by key, with the stored
// response decoded: its body is base64 in the record).
func readJetStream(t *testing.T, natsURL string) (msgs, records map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(natsURL)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	msgs = map[string]string{}
	for _, name := range []string{queue.StreamCharges, queue.StreamEvents, queue.StreamWebhooks} {
		st, err := js.Stream(ctx, name)
		require.NoError(t, err, "stream %s", name)
		info, err := st.Info(ctx)
		require.NoError(t, err)
		if info.State.Msgs == 0 {
			continue
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // acked off a work queue, or deleted
			}
			require.NoError(t, err, "stream %s seq %d", name, seq)
			msgs[fmt.Sprintf("%s %d", name, seq)] = fmt.Sprintf("%s %v %s", m.Subject, m.Header, m.Data)
		}
	}

	records = map[string]string{}
	kv, err := js.KeyValue(ctx, queue.BucketIdempotency)
	require.NoError(t, err)
	keys, err := kv.ListKeys(ctx)
	require.NoError(t, err)
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		require.NoError(t, err)
		var rec struct {
			Body []byte `json:"body"`
		}
		require.NoError(t, json.Unmarshal(e.Value(), &rec), "record %s: %s", k, e.Value())
		records[k] = string(e.Value()) + " " + string(rec.Body)
	}
	return msgs, records
}

// storeDocuments returns every record of the store, past the store, by line.
func storeDocuments(t *testing.T, cfg config.Config) map[string]string {
	t.Helper()
	docs := map[string]string{}
	for i, line := range strings.Split(storetest.Dump(t, service.StoreConfig(cfg)), "\n") {
		if line != "" {
			docs[fmt.Sprintf("%d", i)] = line
		}
	}
	require.NotEmpty(t, docs)
	return docs
}

// pollUntil calls cond, in the test's goroutine, until it holds; what names it.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out after %s waiting for %s", timeout, what)
		<-tick.C
	}
}

// excerpt is the text around m in text.
func excerpt(text, m string) string {
	i := strings.Index(text, m)
	return text[max(0, i-200):min(len(text), i+len(m)+200)]
}

// Metadata keys of any printable text are accepted, settle, and come back exactly as sent
// from GET, the list and the charge.succeeded event, on whatever store startSystem
// configures.
func TestMetadataKeysOfEveryShapeSettle(t *testing.T) {
	t.Parallel()
	s := startSystem(t, func(c *config.Config) { c.RateBurst = 100_000 })
	tok := s.token("merchant_metadata_shapes")

	keys := []string{
		"$where", "$set", "$", "$$", "$ref", "$id", "$gt", "a.b", ".", "..", ".a", "a.", "order.id", "a.b.c",
		"a b", " ", "  lead", "trail ", "_id", "__proto__", "constructor", "ключ", "キー", "🔑", "👩‍👩‍👧",
		`"q"`, `'`, `a\b`, `\`, `{}`, "null", "0", "a\u00a0b", "é", "e\u0301", strings.Repeat("k", 40),
	}
	require.LessOrEqual(t, len(keys), charge.MaxMetadataKeys)
	all := map[string]string{}
	var wants []map[string]string
	for i, k := range keys {
		v := fmt.Sprintf("value %d of %s", i, k)
		all[k] = v
		wants = append(wants, map[string]string{k: v})
	}
	wants = append(wants, all)

	ids := make([]string, len(wants))
	for i, md := range wants {
		raw, err := json.Marshal(md)
		require.NoError(t, err)
		c := s.create(tok, chargeBody(1000+i, "pm_card_visa", `"metadata": `+string(raw)))
		requireMetadata(t, md, c["metadata"], "202 of %v", md)
		ids[i] = c["id"].(string)
	}
	for i, id := range ids {
		c := s.settle(tok, id)
		require.Equal(t, "succeeded", c["status"], "charge of %v", wants[i])
		r := s.do("GET", "/v1/charges/"+id, tok, "")
		require.Equal(t, http.StatusOK, r.status)
		requireMetadata(t, wants[i], r.json(t)["metadata"], "GET of %v", wants[i])
	}

	listed := map[string]any{}
	for _, body := range listAll(t, s, tok, "/v1/charges") {
		var c map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &c))
		listed[c["id"].(string)] = c["metadata"]
	}
	events := map[string]any{}
	pollUntil(t, 30*time.Second, "every charge has its charge.succeeded event", func() bool {
		clear(events)
		for _, body := range listAll(t, s, tok, "/v1/events?type=charge.succeeded") {
			var e struct {
				Data struct {
					Object map[string]any `json:"object"`
				} `json:"data"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &e))
			events[e.Data.Object["id"].(string)] = e.Data.Object["metadata"]
		}
		return len(events) == len(ids)
	})
	for i, id := range ids {
		requireMetadata(t, wants[i], listed[id], "list of %v", wants[i])
		requireMetadata(t, wants[i], events[id], "charge.succeeded of %v", wants[i])
	}
}

func requireMetadata(t *testing.T, want map[string]string, got any, msgAndArgs ...any) {
	t.Helper()
	m, ok := got.(map[string]any)
	require.True(t, ok, msgAndArgs...)
	gotStrings := map[string]string{}
	for k, v := range m {
		s, ok := v.(string)
		require.True(t, ok, msgAndArgs...)
		gotStrings[k] = s
	}
	require.Equal(t, want, gotStrings, msgAndArgs...)
}

// The answer's X-Request-Id is the server's own; the client's is logged beside it.
func TestClientRequestIDIsLoggedBeside(t *testing.T) {
	t.Parallel()
	s, logs := startSystemWithLogs(t, nil)
	tok := s.token("merchant_request_ids")
	serverID := regexp.MustCompile(`^req_[0-9a-f]{24}$`)

	for _, r := range []struct {
		name                 string
		method, path, body   string
		status               int
		client, loggedClient string
	}{
		{"get", "GET", "/v1/charges", "", 200, "trace-123", "trace-123"},
		{"create", "POST", "/v1/charges", chargeBody(1000, "pm_card_visa"), 202, "trace-456.a_b", "trace-456.a_b"},
		{"refused", "POST", "/v1/charges", `{"amount": "x"}`, 400, "trace-789", "trace-789"},
		{"not found", "GET", "/v1/charges/" + charge0ID, "", 404, "trace-404", "trace-404"},
		// A client id that is no sane token is not logged at all.
		{"client id with spaces", "GET", "/v1/charges", "", 200, "trace 1 a=b", ""},
		{"client id too long", "GET", "/v1/charges", "", 200, strings.Repeat("t", 129), ""},
	} {
		t.Run(r.name, func(t *testing.T) {
			headers := []string{"X-Request-Id", r.client}
			if r.method == "POST" {
				headers = append(headers, "Idempotency-Key", newKey())
			}
			resp := s.do(r.method, r.path, tok, r.body, headers...)
			require.Equal(t, r.status, resp.status, "body: %s", resp.body)
			id := resp.header.Get("X-Request-Id")
			require.Regexp(t, serverID, id)
			require.NotContains(t, id, r.client)
			require.Len(t, resp.header.Values("X-Request-Id"), 1)

			var line string
			pollUntil(t, 10*time.Second, "a log line with request_id="+id, func() bool {
				for l := range strings.Lines(logs.String()) {
					if strings.Contains(l, " request_id="+id+" ") {
						line = l
						return true
					}
				}
				return false
			})
			require.Contains(t, line, "msg=request ")
			require.Contains(t, line, " request_id="+id+" ")
			require.Contains(t, line, fmt.Sprintf(" status=%d ", r.status))
			if r.loggedClient != "" {
				require.Contains(t, line, " client_request_id="+r.loggedClient+" ", "line: %s", line)
			} else {
				require.NotContains(t, line, "client_request_id", "line: %s", line)
			}
			// No line holds the client's id as the server's.
			require.NotRegexp(t, `(^|\s)request_id="?`+regexp.QuoteMeta(r.client), logs.String())
		})
	}
}
