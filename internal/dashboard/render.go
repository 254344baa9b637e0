package dashboard

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
)

// view is what every page template is given.
type view struct {
	Title   string
	Session *session
	Nav     []navItem
	Active  string
	// Notice says what an action did; Error what went wrong.
	Notice, Error string
	Data          any
}

// parsePages parses each page template with the layout.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"money": money,
		"when":  when,
		"deref": func(s *string) string {
			if s == nil {
				return ""
			}
			return *s
		},
		"prefix":   func() string { return Prefix },
		"newKey":   newIdempotencyKey,
		"has":      func(s *session, scope string) bool { return s.Has(scope) },
		"scopes":   scopesOf,
		"lower":    strings.ToLower,
		"statusOK": func(code *int) bool { return code != nil && *code >= 200 && *code < 300 },
	}
	names, err := templateFiles.ReadDir("templates")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(n.Name(), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", path.Join("templates", n.Name()))
		if err != nil {
			return nil, fmt.Errorf("dashboard: parsing %s: %w", n.Name(), err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes page name with status; rendered first into a buffer so that a failed
// template is a clean 500.
func (s *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, sess *session, v *view) {
	v.Session = sess
	v.Active = name
	if sess != nil {
		for _, n := range navigation {
			if sess.Has(n.Scope) && (n.Scope != "ops:read" || s.Operations != nil) {
				v.Nav = append(v.Nav, n)
			}
		}
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		s.Logger.Error("dashboard: rendering", "page", name, "error", err)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders the error err as a page: not found as the same 404 whatever the reason
// (another merchant's id included), the rest as the API would classify it.
func (s *Dashboard) fail(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	status, msg := describe(err)
	if status == http.StatusNotFound {
		s.render(w, r, status, "notfound", sess, &view{Title: "Not found"})
		return
	}
	if status >= 500 {
		s.Logger.Error("dashboard: request failed", "path", r.URL.Path, "error", err)
	}
	s.render(w, r, status, "error", sess, &view{Title: "Error", Error: msg})
}

// describe is the status and message an error is shown with.
func describe(err error) (int, string) {
	var invalid *charge.InvalidRequestError
	var reused *ingest.KeyReusedError
	switch {
	case errors.Is(err, charge.ErrNotFound):
		return http.StatusNotFound, "Not found."
	case errors.As(err, &invalid):
		if invalid.Code == charge.CodeResourceMissing {
			return http.StatusNotFound, "Not found."
		}
		return http.StatusBadRequest, invalid.Detail
	case errors.Is(err, charge.ErrOperationInProgress):
		return http.StatusConflict, "A capture or cancel of this charge is under way: wait for it to settle."
	case errors.Is(err, ingest.ErrKeyInUse):
		return http.StatusConflict, "This request is still being carried out: reload the page in a moment."
	case errors.As(err, &reused):
		return http.StatusUnprocessableEntity, "This form was already submitted with other values: reload the page to make a new request."
	case errors.Is(err, charge.ErrUnavailable):
		return http.StatusServiceUnavailable, "The service is busy: try again in a moment."
	}
	return http.StatusInternalServerError, "Something went wrong on our side."
}

// newIdempotencyKey is the key a form carries: made when the form is rendered, so that
// submitting it twice is one request replayed, not two.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "dash_" + hex.EncodeToString(b[:])
}

// zeroDecimal are the currencies without minor units among the common ones.
var zeroDecimal = map[string]bool{
	"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true, "krw": true, "mga": true,
	"pyg": true, "rwf": true, "ugx": true, "vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true,
}

// money shows an amount in its currency's major unit: 1999 usd is "19.99 USD".
func money(amount int64, currency string) string {
	cur := strings.ToUpper(currency)
	if zeroDecimal[currency] {
		return strconv.FormatInt(amount, 10) + " " + cur
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, amount/100, amount%100, cur)
}

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
