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

// commandToken names the token of a command's subject that follows the charge id.
func commandToken(t charge.CommandType) (string, error) {
	switch t {
	case charge.CommandCreate:
		return "create", nil
	case charge.CommandCapture:
		return "capture", nil
	case charge.CommandCancel:
		return "cancel", nil
	case charge.CommandRefund:
		return "refund", nil
	}
	return "", invalid("unknown command type %q", t)
}

// commandSubject is charges.<charge id>.<command token>.
func commandSubject(chargeID, token string) string {
	return subjectCharges + "." + chargeID + "." + token
}

// operationSubject is charges.<charge id>.op.<command token>, for a capture or cancel:
// their own token space, so that one subject filter holds a charge's operations and
// nothing else (operationLock).
func operationSubject(chargeID, token string) string {
	return commandSubject(chargeID, "op") + "." + token
}

// refundSubject is charges.<charge id>.refund.<refund id>: a charge has any number of
// refunds, each a command of its own, and the refund id alone finds its command (with a
// wildcard for the charge id).
func refundSubject(chargeID, refundID string) string {
	return commandSubject(chargeID, "refund") + "." + refundID
}

// commandAddress returns the subject of cmd and its Nats-Msg-Id, under which the stream
// stores a republish of the same command once:
//
//	charge.create   charges.<charge id>.create               <charge id>:create
//	charge.capture  charges.<charge id>.op.capture           <charge id>:capture:<operation id>
//	charge.cancel   charges.<charge id>.op.cancel            <charge id>:cancel:<operation id>
//	refund.create   charges.<charge id>.refund.<refund id>   <refund id>
//
// A charge is created once, so its id names the create command; a capture or cancel is
// named by its operation id too (commands accepted before it had one: the charge id
// alone), a refund by its own id.
func commandAddress(cmd charge.Command) (subject, msgID string, err error) {
	token, err := commandToken(cmd.Type)
	if err != nil {
		return "", "", err
	}
	if !validToken(cmd.ChargeID) {
		return "", "", invalid("command charge id %q", cmd.ChargeID)
	}
	if cmd.Type != charge.CommandRefund {
		msgID = cmd.ChargeID + ":" + token
		if cmd.ID != "" {
			// Two operations of one charge are two messages: the second must meet the
			// first's lock (operationLock), not be taken for a republish of it.
			msgID += ":" + cmd.ID
		}
		if cmd.Type == charge.CommandCreate {
			return commandSubject(cmd.ChargeID, token), msgID, nil
		}
		return operationSubject(cmd.ChargeID, token), msgID, nil
	}
	if cmd.Refund == nil || !validToken(cmd.Refund.ID) {
		return "", "", invalid("refund command for %s without a valid refund id", cmd.ChargeID)
	}
	return refundSubject(cmd.ChargeID, cmd.Refund.ID), cmd.Refund.ID, nil
}

// operationLock returns the subject filter that holds a charge's operations in progress,
// for a capture or cancel command, and "" for any other: *.<charge id>.op.* matches the
// charge's capture and cancel commands and their later copies, not its create command nor
// its refunds. Such a command is stored only while no message matches it (a publish
// expecting last sequence 0 on it): one operation at a time per charge. A worker
// acknowledges (so removes) a command once its settlement is stored, which releases the
// lock. (The create command is not in it: a charge the store shows requires_capture is
// decided, whether or not its create command's acknowledgement has reached the stream;
// before that, the ingest reads the charge pending and refuses the operation.)
func operationLock(cmd charge.Command) string {
	if cmd.Type != charge.CommandCapture && cmd.Type != charge.CommandCancel {
		return ""
	}
	return "*." + cmd.ChargeID + ".op.*"
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
