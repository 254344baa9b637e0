package queue

import (
	"fmt"
	"strings"

	"github.com/billing/billing/internal/charge"
)

// The first tokens of our subjects.
const (
	subjectCharges  = "charges"
	subjectEvents   = "events"
	subjectWebhooks = "webhooks"
)

// maxTokenLen bounds one subject token; our ids and keys are far shorter.
const maxTokenLen = 256

// validToken reports whether s can be one token of a subject: non-empty, printable ASCII,
// and none of '.', '*', '>' or space.
func validToken(s string) bool {
	if s == "" || len(s) > maxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ', c >= 0x7f, c == '.', c == '*', c == '>':
			return false
		}
	}
	return true
}

// validTokens reports whether s is one or more valid tokens joined by single dots (an
// event type such as "charge.succeeded").
func validTokens(s string) bool {
	for tok := range strings.SplitSeq(s, ".") {
		if !validToken(tok) {
			return false
		}
	}
	return true
}

// commandToken names the last token of a command's subject.
func commandToken(t charge.CommandType) (string, error) {
	switch t {
	case charge.CommandCreate:
		return "create", nil
	}
	return "", invalid("unknown command type %q", t)
}

// commandSubject is charges.<charge id>.<command token>.
func commandSubject(chargeID, token string) string {
	return subjectCharges + "." + chargeID + "." + token
}

// eventSubject is events.<charge id>.<event type>; the type holds dots of its own.
func eventSubject(e charge.Event) (string, error) {
	if !validToken(e.ChargeID) {
		return "", invalid("event %s: charge id %q", e.ID, e.ChargeID)
	}
	if !validTokens(e.Type) {
		return "", invalid("event %s: type %q", e.ID, e.Type)
	}
	if e.ID == "" {
		return "", invalid("event of charge %s has no id", e.ChargeID)
	}
	return fmt.Sprintf("%s.%s.%s", subjectEvents, e.ChargeID, e.Type), nil
}
