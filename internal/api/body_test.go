package api

import (
	"encoding/json"
	"testing"

	"github.com/billing/billing/internal/charge"
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

// FuzzDecodeCharge drives the request decoder with arbitrary bodies: it must never panic;
// what it accepts must hold no card number and have a canonical form that is valid JSON
// and decodes to the same parameters.
func FuzzDecodeCharge(f *testing.F) {
	for _, s := range []string{
		`{"amount": 1999, "currency": "usd", "payment_method": "pm_card_visa"}`,
		`{"amount": 1999, "metadata": {"k": "4242 4242 4242 4242"}}`,
		`{"amount": "x"}`, `[]`, `{} {}`, `{"amount": 1e400}`, `{"a": {"b": [1, {"c": null}]}}`,
		`{"description": "\u0000\ud800"}`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var p charge.CreateParams
		canonical, invalid := decodeStrict(raw, &p)
		if invalid != nil {
			if invalid.Code == "" {
				t.Fatalf("problem without a code for %q", raw)
			}
			return
		}
		if !json.Valid(canonical) {
			t.Fatalf("canonical form %q of %q is not JSON", canonical, raw)
		}
		var generic any
		if err := json.Unmarshal(canonical, &generic); err != nil || containsCard(generic) {
			t.Fatalf("accepted a card number or unreadable canonical form: %q", raw)
		}
		var again charge.CreateParams
		if _, invalid := decodeStrict(canonical, &again); invalid != nil {
			t.Fatalf("canonical form %q rejected: %v", canonical, invalid)
		}
	})
}
