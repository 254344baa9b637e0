// Package logredact keeps secrets and payment data out of the logs: a slog.Handler that
// redacts, from every record (message, attributes, groups, errors, resolved LogValuers),
// bearer tokens and JWTs, webhook secrets, the literal secrets it is given, the values of
// attributes whose key names a secret, and anything that looks like a card number.
package logredact

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/billing/billing/internal/charge"
)

// Masked is what replaces the value of an attribute whose key names a secret, and a
// secret found inside a text.
const Masked = "***"

// CardRedacted replaces a whole text that holds a card number: the detector says whether
// a text holds one, not where, and a card number's digits may be spread over it.
const CardRedacted = "[REDACTED: card number]"

// Handler redacts each record, then hands it to the handler it wraps.
type Handler struct {
	next    slog.Handler
	secrets []string // literal secrets, such as the webhook secret key
}

// New returns a Handler that redacts records for next. secrets are literal values
// (configured keys, passwords) to mask wherever they appear; empty ones are ignored.
func New(next slog.Handler, secrets ...string) *Handler {
	h := &Handler{next: next}
	for _, s := range secrets {
		// Shorter values would mask ordinary text; no configured secret is that short.
		if len(s) >= 8 {
			h.secrets = append(h.secrets, s)
		}
	}
	return h
}

// Enabled reports whether the wrapped handler handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle redacts r and passes it on. A record with nothing to redact is passed as it is,
// without a copy.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	msg, msgChanged := h.text(r.Message)
	dirty := msgChanged
	if !dirty {
		r.Attrs(func(a slog.Attr) bool {
			if _, changed := h.attr(a); changed {
				dirty = true
				return false
			}
			return true
		})
	}
	if !dirty {
		return h.next.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		a, _ = h.attr(a)
		out.AddAttrs(a)
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs redacts attrs once, as they are attached.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i], _ = h.attr(a)
	}
	return &Handler{next: h.next.WithAttrs(clean), secrets: h.secrets}
}

// WithGroup opens a group in the wrapped handler: its name is a key, never redacted.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), secrets: h.secrets}
}

// attr returns a redacted, and whether that differs from a.
func (h *Handler) attr(a slog.Attr) (slog.Attr, bool) {
	v := a.Value
	if v.Kind() == slog.KindLogValuer {
		v = v.Resolve()
	}
	if SensitiveKey(a.Key) && !emptyValue(v) {
		return slog.String(a.Key, Masked), true
	}
	switch v.Kind() {
	case slog.KindString:
		if s, changed := h.text(v.String()); changed {
			return slog.String(a.Key, s), true
		}
	case slog.KindInt64:
		// A card number fits in an int64.
		if n := v.Int64(); (n > 999_999_999_999 || n < -999_999_999_999) && charge.ContainsCardNumber(strconv.FormatInt(n, 10)) {
			return slog.String(a.Key, CardRedacted), true
		}
	case slog.KindUint64:
		if n := v.Uint64(); n > 999_999_999_999 && charge.ContainsCardNumber(strconv.FormatUint(n, 10)) {
			return slog.String(a.Key, CardRedacted), true
		}
	case slog.KindGroup:
		group := v.Group()
		var clean []slog.Attr
		for i, ga := range group {
			ra, changed := h.attr(ga)
			if changed && clean == nil {
				clean = make([]slog.Attr, len(group))
				copy(clean, group[:i])
			}
			if clean != nil {
				clean[i] = ra
			}
		}
		if clean != nil {
			return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}, true
		}
	case slog.KindAny:
		if s, ok := h.anyText(v.Any()); ok {
			return slog.String(a.Key, s), true
		}
	}
	// Unchanged: a LogValuer goes on unresolved, for the handler to resolve.
	return a, false
}

// anyText returns the redacted text of an arbitrary value and true when the value, as a
// handler would print it, holds something to redact; the value is then logged as that text.
func (h *Handler) anyText(x any) (string, bool) {
	var s string
	switch x := x.(type) {
	case nil:
		return "", false
	case error:
		s = x.Error()
	case fmt.Stringer:
		s = x.String()
	case []byte:
		s = string(x)
	default:
		// Structs, maps, slices: their fields as fmt prints them (the JSON handler
		// marshals them instead, with the same strings inside).
		s = fmt.Sprintf("%+v", x)
	}
	return h.text(s)
}

// emptyValue reports whether v holds nothing worth masking (an unset secret may show
// as unset).
func emptyValue(v slog.Value) bool {
	switch v.Kind() {
	case slog.KindString:
		return v.String() == ""
	case slog.KindAny:
		return v.Any() == nil
	case slog.KindGroup:
		return len(v.Group()) == 0
	}
	return false
}

// text returns s redacted, and whether anything was.
func (h *Handler) text(s string) (string, bool) {
	if charge.ContainsCardNumber(s) {
		return CardRedacted, true
	}
	out := s
	for _, secret := range h.secrets {
		if strings.Contains(out, secret) {
			out = strings.ReplaceAll(out, secret, Masked)
		}
	}
	out = RedactText(out)
	return out, out != s
}

// SensitiveKey reports whether an attribute key names a secret: it ends, ignoring case
// and separators, with token, secret, password, authorization, api_key and the like
// ("access_token", "webhook_secret_key", "Authorization"; not "authorization_id" or
// "idempotency_key").
func SensitiveKey(key string) bool {
	var buf [64]byte
	n := len(buf)
	// The key's letters and digits, lower-cased, right-aligned: only its end matters.
	for i := len(key) - 1; i >= 0 && n > 0; i-- {
		c := key[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		default:
			continue
		}
		n--
		buf[n] = c
	}
	norm := buf[n:]
	for _, suffix := range sensitiveSuffixes {
		if len(norm) >= len(suffix) && string(norm[len(norm)-len(suffix):]) == suffix {
			return true
		}
	}
	return false
}

var sensitiveSuffixes = [...]string{
	"token", "tokens", "secret", "secrets", "password", "passwd", "passphrase",
	"authorization", "apikey", "secretkey", "privatekey", "cookie", "credential", "credentials",
}
