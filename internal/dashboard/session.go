package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/billing/billing/internal/auth"
)

// CookieName holds the session: the token itself, so that every request is verified
// again (expiry, signature, key removed from the JWKS) and nothing is kept server-side.
const CookieName = "billing_dashboard"

// maxFormBytes bounds a form's body.
const maxFormBytes = 64 << 10

// session is the signed-in user of a request.
type session struct {
	auth.Principal
	token string
	// CSRF is the form token of this session: an HMAC of its token under the dashboard's
	// key, carried in a hidden field of every form and checked on every POST.
	CSRF string
}

// Has reports whether the session's token grants scope.
func (s *session) Has(scope string) bool { return s != nil && s.HasScope(scope) }

// session returns the request's session if its cookie holds a token that verifies now.
func (s *Dashboard) session(r *http.Request) (*session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return nil, false
	}
	p, err := s.Verifier.Verify(c.Value)
	if err != nil {
		return nil, false
	}
	return &session{Principal: p, token: c.Value, CSRF: s.csrfToken(c.Value)}, true
}

func (s *Dashboard) csrfToken(token string) string {
	m := hmac.New(sha256.New, s.csrfKey[:])
	m.Write([]byte(token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF reports whether a form carries its session's token.
func (s *Dashboard) validCSRF(sess *session, r *http.Request) bool {
	got := r.PostFormValue("csrf_token")
	return got != "" && hmac.Equal([]byte(got), []byte(sess.CSRF))
}

// page wraps a GET handler: a session with scope is required; without a session the
// user is sent to sign in, without the scope they are told so (403).
func (s *Dashboard) page(scope string, h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.session(r)
		if !ok {
			http.Redirect(w, r, Prefix+"/sign-in", http.StatusSeeOther)
			return
		}
		if !sess.Has(scope) {
			s.render(w, r, http.StatusForbidden, "forbidden", sess, &view{Title: "Forbidden",
				Error: "Your token lacks the " + scope + " scope this page needs."})
			return
		}
		h(w, r, sess)
	})
}

// action wraps a POST handler: a session with scope and the session's form token are
// required; anything else is refused (401, 403) without doing anything.
func (s *Dashboard) action(scope string, h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		sess, ok := s.session(r)
		if !ok {
			s.render(w, r, http.StatusUnauthorized, "signin", nil, &view{Title: "Sign in", Error: "Your session has ended: sign in again."})
			return
		}
		if !s.validCSRF(sess, r) {
			s.render(w, r, http.StatusForbidden, "forbidden", sess, &view{Title: "Forbidden", Error: "The form is stale or did not come from this dashboard: reload the page and try again."})
			return
		}
		if !sess.Has(scope) {
			s.render(w, r, http.StatusForbidden, "forbidden", sess, &view{Title: "Forbidden",
				Error: "Your token lacks the " + scope + " scope this action needs."})
			return
		}
		h(w, r, sess)
	})
}

func (s *Dashboard) signInPage(w http.ResponseWriter, r *http.Request) {
	if sess, ok := s.session(r); ok {
		s.render(w, r, http.StatusOK, "signin", sess, &view{Title: "Sign in"})
		return
	}
	s.render(w, r, http.StatusOK, "signin", nil, &view{Title: "Sign in"})
}

// signIn takes a pasted token: verified as the API verifies it, then kept in the
// session cookie until the token expires.
func (s *Dashboard) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	token := strings.TrimSpace(r.PostFormValue("token"))
	token = strings.TrimSpace(strings.TrimPrefix(token, "Bearer "))
	if !s.startSession(w, token) {
		// As the API: which check failed is not told.
		s.render(w, r, http.StatusUnauthorized, "signin", nil, &view{Title: "Sign in", Error: "The token is invalid or expired."})
		return
	}
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// startSession sets the session cookie to token if it verifies, until it expires.
func (s *Dashboard) startSession(w http.ResponseWriter, token string) bool {
	_, err := s.Verifier.Verify(token)
	exp, ok := expiry(token)
	maxAge := int(exp.Sub(s.NowFunc()).Seconds())
	if err != nil || !ok || maxAge < 1 {
		return false
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: token, Path: Prefix, Expires: exp, MaxAge: maxAge,
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteStrictMode,
	})
	return true
}

// signInLink is a sign-in by link that AllowSignInLink made.
type signInLink struct {
	token string
	until time.Time
}

// AllowSignInLink makes Prefix+"/sign-in/"+code sign in as token, once, until until:
// the link `devstack up` prints. The token stays out of the URL (and so out of browser
// history, logs and Referer headers); the code is a random one, spent by its first use.
func (s *Dashboard) AllowSignInLink(code, token string, until time.Time) {
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	if s.links == nil {
		s.links = map[string]signInLink{}
	}
	s.links[code] = signInLink{token: token, until: until}
}

// signInByLink spends the link's code: a session as its token, or the sign-in form
// saying the link is spent or stale.
func (s *Dashboard) signInByLink(w http.ResponseWriter, r *http.Request) {
	s.linksMu.Lock()
	link, ok := s.links[r.PathValue("code")]
	delete(s.links, r.PathValue("code"))
	s.linksMu.Unlock()
	if !ok || s.NowFunc().After(link.until) || !s.startSession(w, link.token) {
		s.render(w, r, http.StatusUnauthorized, "signin", nil, &view{Title: "Sign in",
			Error: "This sign-in link was used already or has expired: paste a token instead."})
		return
	}
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// signOut forgets the session. It needs the form token, as every POST does, so that
// no other site can sign a user out.
func (s *Dashboard) signOut(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if sess, ok := s.session(r); ok && !s.validCSRF(sess, r) {
		s.render(w, r, http.StatusForbidden, "forbidden", sess, &view{Title: "Forbidden", Error: "The form is stale: reload the page and try again."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, Prefix+"/sign-in", http.StatusSeeOther)
}

// expiry reads the exp claim of a token that has been verified (so the claim is the
// signed one, and a number).
func expiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Exp <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(c.Exp), 0), true
}

// scopesOf lists a session's scopes for display.
func scopesOf(s *session) string {
	if s == nil {
		return ""
	}
	return strings.Join(slices.Clone(s.Scopes), " ")
}
