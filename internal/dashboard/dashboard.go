// Package dashboard is the merchants' and operators' web dashboard, served by the ingest
// at /dashboard: server-rendered pages over the same services the API uses, signed in
// with the API's tokens (kept in a cookie), their scopes deciding what is shown and
// allowed. Every read is scoped by the signed-in merchant and bounded (pages of at most
// 100, by index); each page's handler names the store queries it makes.
package dashboard

import (
	"context"
	"crypto/rand"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
	"github.com/billing/billing/internal/webhook"
)

// Prefix is where the dashboard is mounted.
const Prefix = "/dashboard"

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// Verifier checks a token and says whose it is: the API's.
type Verifier interface {
	Verify(token string) (auth.Principal, error)
}

// TransitionLog reads a charge's transitions (the store's, by charge id).
type TransitionLog interface {
	TransitionsFrom(ctx context.Context, from map[string]int) (map[string][]charge.Transition, error)
}

// Deps are what the dashboard serves from: the API's verifier and services.
type Deps struct {
	Logger      *slog.Logger
	Verifier    Verifier
	Charges     *ingest.Charges
	Refunds     *ingest.Refunds
	Balances    *ingest.Balances
	Webhooks    *webhook.Endpoints
	Idempotency *ingest.Idempotency
	Transitions TransitionLog
	// Operations backs the operator pages; nil hides them.
	Operations Operations
	// Secure marks the session cookie Secure: the ingest serves TLS.
	Secure  bool
	NowFunc charge.TimeNow
}

// Dashboard serves the dashboard's pages.
type Dashboard struct {
	Deps
	// csrfKey signs each session's form token; random per process, so that a restart
	// only makes the forms on screen stale.
	csrfKey [32]byte
	pages   map[string]*template.Template
	handler http.Handler
	// links are the sign-in links not yet used, by code (AllowSignInLink).
	linksMu sync.Mutex
	links   map[string]signInLink
}

// New builds the dashboard.
func New(d Deps) (*Dashboard, error) {
	if d.NowFunc == nil {
		d.NowFunc = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Dashboard{Deps: d}
	if _, err := rand.Read(s.csrfKey[:]); err != nil {
		return nil, fmt.Errorf("dashboard: making the form key: %w", err)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s.pages = pages

	mux := http.NewServeMux()
	assets, _ := fs.Sub(assetFiles, "assets")
	mux.Handle("GET "+Prefix+"/assets/", http.StripPrefix(Prefix+"/assets/", http.FileServerFS(assets)))
	mux.HandleFunc("GET "+Prefix, s.home)
	mux.HandleFunc("GET "+Prefix+"/{$}", s.home)
	mux.HandleFunc("GET "+Prefix+"/sign-in", s.signInPage)
	mux.HandleFunc("POST "+Prefix+"/sign-in", s.signIn)
	mux.HandleFunc("GET "+Prefix+"/sign-in/{code}", s.signInByLink)
	mux.HandleFunc("POST "+Prefix+"/sign-out", s.signOut)

	read, write := auth.ScopeChargesRead, auth.ScopeChargesWrite
	mux.Handle("GET "+Prefix+"/charges", s.page(read, s.charges))
	mux.Handle("GET "+Prefix+"/charges/{id}", s.page(read, s.charge))
	mux.Handle("GET "+Prefix+"/charges/{id}/wait", s.page(read, s.waitCharge))
	mux.Handle("POST "+Prefix+"/charges/{id}/capture", s.action(write, s.capture))
	mux.Handle("POST "+Prefix+"/charges/{id}/cancel", s.action(write, s.cancel))
	mux.Handle("POST "+Prefix+"/charges/{id}/refund", s.action(write, s.refund))
	mux.Handle("GET "+Prefix+"/balance", s.page(read, s.balance))

	manage := auth.ScopeWebhooksManage
	mux.Handle("GET "+Prefix+"/webhooks", s.page(manage, s.endpoints))
	mux.Handle("GET "+Prefix+"/webhooks/{id}", s.page(manage, s.endpoint))
	mux.Handle("POST "+Prefix+"/webhooks/{id}/rotate", s.action(manage, s.rotate))
	mux.Handle("POST "+Prefix+"/webhooks/{id}/status", s.action(manage, s.setStatus))
	mux.Handle("POST "+Prefix+"/events/{id}/redeliver", s.action(manage, s.redeliver))
	mux.Handle("GET "+Prefix+"/events", s.page(auth.ScopeEventsRead, s.events))

	mux.Handle("GET "+Prefix+"/ops", s.page(auth.ScopeOpsRead, s.ops))
	mux.Handle("POST "+Prefix+"/ops/dead-letters/replay", s.action(auth.ScopeOpsWrite, s.replayDeadLetter))
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		s.render(w, r, http.StatusNotFound, "notfound", nil, &view{Title: "Not found"})
	})

	// Cross-origin POSTs (by Sec-Fetch-Site or Origin) are refused before anything else;
	// the form token and SameSite=Strict are the other two locks on the same door.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.render(w, r, http.StatusForbidden, "forbidden", nil, &view{Title: "Forbidden", Error: "Cross-origin request refused."})
	}))
	s.handler = securityHeaders(cop.Handler(mux))
	return s, nil
}

// ServeHTTP serves the dashboard; requests outside Prefix are not its own.
func (s *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Owns reports whether a request's path is the dashboard's.
func Owns(path string) bool { return path == Prefix || strings.HasPrefix(path, Prefix+"/") }

// contentSecurityPolicy allows only the dashboard's own CSS and JS, no inline code, no
// framing, forms posting only back here.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, Prefix+"/assets/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// home sends a signed-in user to their first page, anyone else to sign in.
func (s *Dashboard) home(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.session(r)
	if !ok {
		http.Redirect(w, r, Prefix+"/sign-in", http.StatusSeeOther)
		return
	}
	for _, p := range navigation {
		if sess.Has(p.Scope) {
			http.Redirect(w, r, p.Path, http.StatusSeeOther)
			return
		}
	}
	s.render(w, r, http.StatusForbidden, "forbidden", sess, &view{Title: "Forbidden", Error: "This token grants none of the dashboard's pages."})
}

// navItem is a page of the navigation, shown to sessions with its scope.
type navItem struct {
	Name, Path, Scope, ID string
}

var navigation = []navItem{
	{"Charges", Prefix + "/charges", auth.ScopeChargesRead, "nav-charges"},
	{"Balance", Prefix + "/balance", auth.ScopeChargesRead, "nav-balance"},
	{"Webhooks", Prefix + "/webhooks", auth.ScopeWebhooksManage, "nav-webhooks"},
	{"Events", Prefix + "/events", auth.ScopeEventsRead, "nav-events"},
	{"Operations", Prefix + "/ops", auth.ScopeOpsRead, "nav-ops"},
}
