package charge

import (
	"unicode"
	"unicode/utf8"
)

// Card numbers have 13 to 19 digits here (ISO/IEC 7812 allows Maestro's 12, which is too
// short to tell from other numbers).
const (
	minCardDigits = 13
	maxCardDigits = 19
)

// cardLengths is the set of lengths from lo to hi digits, as a bit mask.
func cardLengths(lo, hi int) uint32 { return 1<<(hi+1) - 1<<lo }

// cardBrands are the issuer identification number ranges of the card brands, each with
// its first prefixLen digits from lo to hi and its numbers' lengths (bit n: n digits).
// Digits that match none of them (a timestamp, a phone number, an order number) are no card.
var cardBrands = [...]struct {
	prefixLen, lo, hi int
	lengths           uint32
}{
	{1, 4, 4, 1<<13 | 1<<16 | 1<<19},         // Visa
	{2, 51, 55, 1 << 16},                     // Mastercard
	{4, 2221, 2720, 1 << 16},                 // Mastercard
	{2, 34, 34, 1 << 15},                     // American Express
	{2, 37, 37, 1 << 15},                     // American Express
	{4, 6011, 6011, cardLengths(16, 19)},     // Discover
	{3, 644, 649, cardLengths(16, 19)},       // Discover
	{2, 65, 65, cardLengths(16, 19)},         // Discover
	{6, 622126, 622925, cardLengths(16, 19)}, // Discover (co-branded UnionPay)
	{4, 3528, 3589, cardLengths(16, 19)},     // JCB
	{3, 300, 305, cardLengths(14, 19)},       // Diners Club
	{4, 3095, 3095, cardLengths(14, 19)},     // Diners Club
	{2, 36, 36, cardLengths(14, 19)},         // Diners Club
	{2, 38, 39, cardLengths(14, 19)},         // Diners Club
	{2, 62, 62, cardLengths(16, 19)},         // UnionPay
	{2, 50, 50, cardLengths(13, 19)},         // Maestro
	{2, 56, 69, cardLengths(13, 19)},         // Maestro
	{4, 2200, 2204, cardLengths(16, 19)},     // Mir
}

// ContainsCardNumber reports whether s holds something that looks like a payment card
// number: 13 to 19 digits with a card brand's prefix and length, passing the Luhn check,
// whatever separates the digits. Such data must never be accepted, logged or stored
// (docs/api.md, "Conventions").
//
// Digits separated by runs of anything but letters and digits (spaces, dashes, dots,
// slashes, underscores, mixed or repeated) form a run of digit groups; a letter ends the
// run. Every span of whole consecutive groups of a run is a candidate, so
// "4242 - 4242.4242/4242", a number followed by other digits ("4242424242424242 1234") or
// preceded by some ("order 12 4242 4242 4242 4242") are all caught, while a window inside
// one long group (an order number, say) is not mistaken for a card. Digits of any script
// count ("４２４２…" is a card too). A span holds at most 19 digits, so each group is
// checked with at most 18 before it: the scan is linear and does not allocate.
func ContainsCardNumber(s string) bool {
	var sc cardScanner
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			i++
			switch {
			case '0' <= c && c <= '9':
				sc.digit(c - '0')
			case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
				if sc.endRun() {
					return true
				}
			default:
				if sc.endGroup() {
					return true
				}
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if v, ok := digitValue(r); ok {
			sc.digit(v)
		} else if unicode.IsLetter(r) || unicode.IsNumber(r) {
			if sc.endRun() {
				return true
			}
		} else if sc.endGroup() {
			return true
		}
	}
	return sc.endRun()
}

// cardScanner holds the tail of a run of digit groups, then the current group.
type cardScanner struct {
	digits [64]byte
	starts [64]int // starts[k] is the index in digits of group k's first digit
	n      int     // digits held
	groups int     // complete groups held
	cur    int     // digits of the current group, held or not
}

func (sc *cardScanner) digit(v byte) {
	// A group too long to hold is longer than a card: endGroup drops it.
	if sc.n < len(sc.digits) {
		sc.digits[sc.n] = v
		sc.n++
	}
	sc.cur++
}

// endGroup ends the current group, if any, and reports whether a span of whole groups
// ending with it is a card number.
func (sc *cardScanner) endGroup() bool {
	cur := sc.cur
	if cur == 0 {
		return false
	}
	sc.cur = 0
	if cur > maxCardDigits {
		// No span can hold this group, nor cross it.
		sc.n, sc.groups = 0, 0
		return false
	}
	sc.starts[sc.groups] = sc.n - cur
	sc.groups++
	// Spans ending here, shortest first: the Luhn sum grows leftwards, one digit at a time.
	digits := sc.digits[:sc.n]
	sum, i := 0, len(digits)
	for k := sc.groups - 1; k >= 0; k-- {
		start := sc.starts[k]
		if len(digits)-start > maxCardDigits {
			break
		}
		for ; i > start; i-- {
			if (len(digits)-i)&1 == 1 {
				sum += luhnDoubled[digits[i-1]]
			} else {
				sum += int(digits[i-1])
			}
		}
		if len(digits)-start >= minCardDigits && sum%10 == 0 && brandNumber(digits[start:]) {
			return true
		}
	}
	if sc.n < len(sc.digits)-maxCardDigits {
		return false // room for a group of a card's length
	}
	// Keep only the groups a later span (one more digit at least) may start with.
	drop := 0
	for drop < sc.groups && sc.n-sc.starts[drop] >= maxCardDigits {
		drop++
	}
	if drop > 0 {
		first := sc.n
		if drop < sc.groups {
			first = sc.starts[drop]
		}
		sc.n = copy(sc.digits[:], sc.digits[first:sc.n])
		for k := drop; k < sc.groups; k++ {
			sc.starts[k-drop] = sc.starts[k] - first
		}
		sc.groups -= drop
	}
	return false
}

// endRun ends the run: a letter (or the end of the text) separates what comes next.
func (sc *cardScanner) endRun() bool {
	found := sc.endGroup()
	sc.n, sc.groups = 0, 0
	return found
}

// brandNumber reports whether d, Luhn-valid, has a card brand's prefix and length.
func brandNumber(d []byte) bool {
	if d[0] < 2 || d[0] > 6 {
		return false // the brands' first digits are 2 to 6
	}
	// Prefixes are compared on the first six digits, read once.
	first6 := 0
	for _, v := range d[:6] {
		first6 = first6*10 + int(v)
	}
	for _, b := range cardBrands {
		scale := prefixScale[b.prefixLen]
		if b.lengths&(1<<len(d)) != 0 && b.lo*scale <= first6 && first6 < (b.hi+1)*scale {
			return true
		}
	}
	return false
}

// luhnDoubled[d] is what d adds to the Luhn sum where it is doubled: every second digit
// from the right, the check digit not included.
var luhnDoubled = [10]int{0, 2, 4, 6, 8, 1, 3, 5, 7, 9}

// prefixScale[n] turns an n-digit prefix into a six-digit one.
var prefixScale = [...]int{1_000_000, 100_000, 10_000, 1000, 100, 10, 1}

// digitValue returns the value of r if it is a decimal digit of any script. Unicode
// encodes every script's digits as contiguous blocks of 0 to 9, so the ranges of
// unicode.Digit are whole blocks and start at a zero.
func digitValue(r rune) (byte, bool) {
	if !unicode.IsDigit(r) {
		return 0, false
	}
	for _, rg := range unicode.Digit.R16 {
		if rune(rg.Lo) <= r && r <= rune(rg.Hi) {
			return byte((r - rune(rg.Lo)) % 10), true
		}
	}
	for _, rg := range unicode.Digit.R32 {
		if rune(rg.Lo) <= r && r <= rune(rg.Hi) {
			return byte((r - rune(rg.Lo)) % 10), true
		}
	}
	return 0, false
}
