package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// Masked stands for a secret in the logged configuration.
const Masked = "***"

// LogValue is the configuration as logged: every field under its YAML key, secrets
// (log:"secret") as "***" when set, URLs (log:"url") with their password as "***".
func (c Config) LogValue() slog.Value {
	v := reflect.ValueOf(c)
	t := v.Type()
	attrs := make([]slog.Attr, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			continue
		}
		attrs = append(attrs, slog.Attr{Key: key, Value: fieldValue(f, v.Field(i))})
	}
	return slog.GroupValue(attrs...)
}

func fieldValue(f reflect.StructField, v reflect.Value) slog.Value {
	switch f.Tag.Get("log") {
	case "secret":
		if v.IsZero() {
			return slog.StringValue("")
		}
		return slog.StringValue(Masked)
	case "url":
		return slog.StringValue(maskURLs(v.String()))
	}
	switch x := v.Interface().(type) {
	case []time.Duration:
		s := make([]string, len(x))
		for i, d := range x {
			s[i] = d.String()
		}
		return slog.StringValue(strings.Join(s, ","))
	case []string:
		return slog.StringValue(strings.Join(x, ","))
	default:
		return slog.AnyValue(x)
	}
}

// maskURLs masks the password of each URL of a comma-separated list (or the user
// name, when it stands alone: a token). What does not parse is masked whole.
func maskURLs(list string) string {
	if list == "" {
		return ""
	}
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = maskURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Masked
	}
	if u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), Masked)
	} else {
		u.User = url.User(Masked)
	}
	// url escapes "*" in user information; "***" reads better in a log.
	return strings.Replace(u.String(), url.QueryEscape(Masked), Masked, 1)
}

// Secrets are the values of cfg that must never appear in a log: the secrets and the
// passwords of its URLs, for a log handler to mask wherever they turn up.
func (c Config) Secrets() []string {
	var out []string
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		switch f.Tag.Get("log") {
		case "secret":
			if s := v.Field(i).String(); s != "" {
				out = append(out, s)
			}
		case "url":
			for p := range strings.SplitSeq(v.Field(i).String(), ",") {
				u, err := url.Parse(strings.TrimSpace(p))
				if err != nil || u.User == nil {
					continue
				}
				if pw, ok := u.User.Password(); ok {
					out = append(out, pw)
				} else {
					out = append(out, u.User.Username())
				}
			}
		}
	}
	return out
}

var _ slog.LogValuer = Config{}

// String keeps fmt from printing the secrets of a Config.
func (c Config) String() string { return fmt.Sprint(c.LogValue()) }
