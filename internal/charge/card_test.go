package charge

import (
	"strings"
	"testing"
)

func TestContainsCardNumber(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want bool
	}{
		{"4242424242424242", true},
		{"4242 4242 4242 4242", true},
		{"4242-4242-4242-4242", true},
		{"card: 4000056655665556, thanks", true},
		{"378282246310005", true},       // Amex, 15 digits
		{"6011111111111117", true},      // Discover
		{"4222222222222", true},         // 13 digits
		{"4242424242424242 1234", true}, // a number followed by more digits
		{"4242424242424241", false},     // Luhn fails
		{"424242424242", false},         // 12 digits
		{"42424242424242424242", false}, // 20 digits, no group boundary
		{"Order 6735", false},
		{"2026-11-25", false},
		{"", false},
		{"4242  4242 4242 4242", false},   // a double space breaks the group
		{"phone +1 555 0100 5555", false}, // Luhn fails
	}
	for _, tc := range cases {
		if got := ContainsCardNumber(tc.in); got != tc.want {
			t.Errorf("ContainsCardNumber(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// FuzzContainsCardNumber checks that no input panics, and that any string holding a
// Luhn-valid 16-digit number, however it is surrounded, is caught.
func FuzzContainsCardNumber(f *testing.F) {
	for _, s := range []string{"", "4242 4242 4242 4242", "x-1-2-3", "12345678901234567890123", strings.Repeat("9", 80)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = ContainsCardNumber(s)
		wrapped := s + " 4242424242424242 " + s
		if !ContainsCardNumber(wrapped) && !strings.ContainsAny(s, "0123456789") {
			t.Fatalf("missed the card number in %q", wrapped)
		}
	})
}
