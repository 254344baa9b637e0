package charge

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/billing/billing/internal/charge/cardtest"
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
		{"4242  4242 4242 4242", true}, // two spaces
		{"4242 - 4242 - 4242 - 4242", true},
		{"4242\t4242\t4242\t4242", true},
		{"4242\n4242\r\n4242\n4242", true},
		{"4242.4242.4242.4242", true},
		{"4242/4242/4242/4242", true},
		{"4242_4242_4242_4242", true},
		{"4242 -/_.4242...4242__4242", true},
		{"(4242)4242,4242;4242", true},
		{"4242\u00a04242\u20144242\u20ac4242", true}, // no-break space, em dash, euro sign
		{"４２４２ ４２４２ ４２４２ ４２４２", true},                // fullwidth digits
		{"card: 4000056655665556, thanks", true},
		{"378282246310005", true},       // American Express, 15 digits
		{"3782 822463 10005", true},     // and as printed on the card
		{"6011111111111117", true},      // Discover
		{"5555555555554444", true},      // Mastercard
		{"2223003122003222", true},      // Mastercard 2-series
		{"3566002020360505", true},      // JCB
		{"30569309025904", true},        // Diners Club, 14 digits
		{"6200000000000005", true},      // UnionPay
		{"6759649826438453", true},      // Maestro
		{"2200000000000004", true},      // Mir
		{"4222222222222", true},         // Visa, 13 digits
		{"4000000000000000006", true},   // Visa, 19 digits
		{"4242424242424242 1234", true}, // a number followed by more digits
		{"order 12 4242 4242 4242 4242", true},
		{"1234 4242424242424242", true},
		{"12 34 4242 4242 4242 4242 56 78", true},
		{strings.Repeat("7 ", 100) + "4242 4242 4242 4242", true}, // after many groups
		{strings.Repeat("12345.", 50) + "4242424242424242", true},
		{strings.Repeat("7", 100) + " 4242 4242 4242 4242", true}, // after a long group
		{strings.Repeat("7 ", 1000), false},
		{"pm_x4242424242424242x", true}, // letters end a run, not a number
		{"4242424242424241", false},     // Luhn fails
		{"424242424242", false},         // 12 digits
		{"42424242424242424242", false}, // 20 digits, no group boundary
		{"1424242424242424242", false},  // a card inside a longer number
		{"1000000000000008", false},     // Luhn-valid, no brand starts with 1
		{"9000000000000001", false},     // nor with 9
		{"1000 0000 0000 0008", false},
		{"400000000000006", false},  // Visa has no 15-digit numbers
		{"40000000000002", false},   // nor 14
		{"3400000000000000", false}, // American Express has 15 digits only
		{"5500000000004", false},    // Mastercard has 16 digits only
		{"2100000000000005", false}, // between Mir and Mastercard
		{"4242-4242-4242-x4242", false},
		{"Order 6735", false},
		{"2026-11-25", false},
		{"2026-11-25T10:00:00Z", false},
		{"2026-11-25 10:00:00.123456", false},
		{"1733500000000", false}, // a timestamp in milliseconds, Luhn-valid
		{"+1 555 0100 5555", false},
		{"+1 555 0100 5555 12", false},
		{"+44 20 7946 0958", false},
		{"", false},
		{"   ", false},
	}
	for _, tc := range cases {
		if got := ContainsCardNumber(tc.in); got != tc.want {
			t.Errorf("ContainsCardNumber(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if got := cardtest.Contains(tc.in); got != tc.want && isASCII(tc.in) {
			t.Errorf("oracle(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestContainsCardNumberDoesNotAllocate(t *testing.T) {
	in := strings.Repeat("12 345-6789/", 1000) + "x" + strings.Repeat("４", 30)
	if n := testing.AllocsPerRun(10, func() { ContainsCardNumber(in) }); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}

// TestDigitValue checks the premise of digitValue: unicode.Digit is whole blocks of 0-9.
func TestDigitValue(t *testing.T) {
	t.Parallel()
	for _, r := range []rune("0123456789") {
		if v, ok := digitValue(r); !ok || int(v) != int(r-'0') {
			t.Fatalf("digitValue(%q) = %d, %v", r, v, ok)
		}
	}
	if v, ok := digitValue('\u0669'); !ok || v != 9 { // Arabic-Indic nine
		t.Fatalf("digitValue(٩) = %d, %v", v, ok)
	}
	for _, rg := range unicode.Digit.R16 {
		if rg.Stride != 1 || (rg.Hi-rg.Lo+1)%10 != 0 {
			t.Fatalf("range %+v is not whole blocks of ten digits", rg)
		}
	}
	for _, rg := range unicode.Digit.R32 {
		if rg.Stride != 1 || (rg.Hi-rg.Lo+1)%10 != 0 {
			t.Fatalf("range %+v is not whole blocks of ten digits", rg)
		}
	}
}

func BenchmarkContainsCardNumber(b *testing.B) {
	// Zeros pass Luhn and match no brand: every span is checked to the end.
	in := strings.Repeat("0 ", 32<<10)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		ContainsCardNumber(in)
	}
}

// testCards are test numbers of each brand.
var testCards = []string{
	"4242424242424242", "5555555555554444", "378282246310005", "6011111111111117",
	"2223003122003222", "3566002020360505", "30569309025904", "6200000000000005",
	"6759649826438453", "2200000000000004", "4222222222222", "4000000000000000006",
}

// cardSeparators are what the fuzz test puts between groups of digits.
var cardSeparators = []string{
	" ", "  ", "-", " - ", "\t", ".", "/", "_", "\n", ",", "*", "+", "#", "(", ")", "'", "\"",
	"\\", ":", "\u00a0", "\u2014", "\u20ac", "\u0301", "\u3000", "...", "_/-",
}

// FuzzContainsCardNumber checks that no input panics, that every input is judged as the
// brute-force oracle judges it, and that a brand's number, cut into groups by any
// separators and set apart from what surrounds it, is always caught.
func FuzzContainsCardNumber(f *testing.F) {
	for _, s := range []string{"", "4242 4242 4242 4242", "x-1-2-3", "12345678901234567890123", strings.Repeat("9", 80), "order 12 4242 4242", "1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0"} {
		f.Add(s, "", uint8(0), uint32(0), []byte{0})
	}
	f.Add("+1 555 0100", "99", uint8(2), uint32(0b1000100010001000), []byte{1, 3, 5})
	f.Add("é4", "5", uint8(1), uint32(0xffff), []byte{25, 24, 23, 22})
	f.Fuzz(func(t *testing.T, before, after string, card uint8, cuts uint32, seps []byte) {
		got := ContainsCardNumber(before)
		if isASCII(before) && got != cardtest.Contains(before) {
			t.Fatalf("ContainsCardNumber(%q) = %v, oracle says otherwise", before, got)
		}
		if len(seps) == 0 {
			seps = []byte{0}
		}
		sep := func(i int) string { return cardSeparators[int(seps[i%len(seps)])%len(cardSeparators)] }
		number := testCards[int(card)%len(testCards)]
		var b strings.Builder
		b.WriteString(before)
		b.WriteString(sep(0))
		for i := range len(number) {
			b.WriteByte(number[i])
			if i < len(number)-1 && cuts&(1<<i) != 0 {
				b.WriteString(sep(i + 1))
			}
		}
		b.WriteString(sep(len(number)))
		b.WriteString(after)
		if !ContainsCardNumber(b.String()) {
			t.Fatalf("missed the card number in %q", b.String())
		}
	})
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
