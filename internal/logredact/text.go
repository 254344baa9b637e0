package logredact

import "strings"

// RedactText masks, in s, what looks like a secret whatever its place: JSON Web Tokens
// (three base64url segments, the first a JSON header: "eyJ…"), the token after "Bearer",
// webhook secrets ("whsec_…") and the password of a URL ("nats://user:***@host"). It
// returns s itself when there is nothing to mask. Card numbers are Handler's.
func RedactText(s string) string {
	if strings.Contains(s, "ey") {
		s = redactJWTs(s)
	}
	if strings.Contains(s, "whsec_") {
		s = redactAfter(s, "whsec_", isSecretByte)
	}
	if strings.Contains(s, "earer") || strings.Contains(s, "EARER") {
		s = redactBearer(s)
	}
	if strings.Contains(s, "://") {
		s = redactUserinfo(s)
	}
	return s
}

func isBase64URL(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// isSecretByte is a byte of a base64 (standard or URL) secret.
func isSecretByte(c byte) bool { return isBase64URL(c) || c == '+' || c == '/' || c == '=' }

// span returns the end of the run of bytes of s from i that ok accepts.
func span(s string, i int, ok func(byte) bool) int {
	for i < len(s) && ok(s[i]) {
		i++
	}
	return i
}

// redactJWTs masks every JWT in s: "ey" (a JSON object, base64url-encoded) starting a
// segment of at least 10 characters, a dot, a segment of at least 2, a dot and a
// signature segment (empty for "alg": "none").
func redactJWTs(s string) string {
	var b strings.Builder
	last := 0 // s[:last] is in b
	for i := 0; i+1 < len(s); {
		j := strings.Index(s[i:], "ey")
		if j < 0 {
			break
		}
		start := i + j
		i = start + 2
		if start > 0 && isBase64URL(s[start-1]) {
			continue // inside a word
		}
		end1 := span(s, start, isBase64URL)
		if end1-start < 10 || end1 >= len(s) || s[end1] != '.' {
			continue
		}
		end2 := span(s, end1+1, isBase64URL)
		if end2-end1-1 < 2 || end2 >= len(s) || s[end2] != '.' {
			continue
		}
		end3 := span(s, end2+1, isBase64URL)
		b.WriteString(s[last:start])
		b.WriteString(Masked)
		last, i = end3, end3
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// redactAfter masks the run of bytes that ok accepts after each prefix in s, keeping the
// prefix ("whsec_***").
func redactAfter(s, prefix string, ok func(byte) bool) string {
	var b strings.Builder
	last := 0
	for i := 0; ; {
		j := strings.Index(s[i:], prefix)
		if j < 0 {
			break
		}
		from := i + j + len(prefix)
		end := span(s, from, ok)
		i = end
		if end == from {
			continue
		}
		b.WriteString(s[last:from])
		b.WriteString(Masked)
		last = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// redactBearer masks the credentials after "Bearer " (any case, one or more spaces).
func redactBearer(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i+6 <= len(s); i++ {
		if !strings.EqualFold(s[i:i+6], "bearer") || i > 0 && isBase64URL(s[i-1]) {
			continue
		}
		from := span(s, i+6, func(c byte) bool { return c == ' ' })
		if from == i+6 {
			continue
		}
		end := span(s, from, func(c byte) bool { return c > ' ' && c != '"' && c != '\'' && c != ',' && c < 0x7f })
		if end == from {
			continue
		}
		b.WriteString(s[last:from])
		b.WriteString(Masked)
		last, i = end, end-1
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// redactUserinfo masks the password of each URL in s ("scheme://user:***@host"), or the
// whole user information when it has no password (a token as user name).
func redactUserinfo(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; ; {
		j := strings.Index(s[i:], "://")
		if j < 0 {
			break
		}
		from := i + j + 3
		// The authority ends at a path, query, fragment, quote, space or the next URL.
		end := len(s)
		if k := strings.Index(s[from:], "://"); k >= 0 {
			end = from + k
		}
		if k := strings.IndexAny(s[from:end], "/?#\"' \t\r\n"); k >= 0 {
			end = from + k
		}
		i = end
		at := strings.IndexByte(s[from:end], '@')
		if at < 0 {
			continue
		}
		user := s[from : from+at]
		if user == "" || user == Masked {
			continue
		}
		mask := from // mask user[mask-from:]
		if c := strings.IndexByte(user, ':'); c >= 0 {
			mask = from + c + 1
			if user[c+1:] == "" || user[c+1:] == Masked {
				continue
			}
		}
		b.WriteString(s[last:mask])
		b.WriteString(Masked)
		last = from + at
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
