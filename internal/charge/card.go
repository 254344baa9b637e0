package charge

// ContainsCardNumber reports whether s holds something that looks like a payment card
// number: 13 to 19 digits, optionally grouped by single spaces or dashes, passing the Luhn
// check. Such data must never be accepted, logged or stored (API.md, "Conventions").
//
// s is split into runs of digit groups (digits joined by single separators). Every span of
// whole consecutive groups is checked, so "4242 4242 4242 4242" and a number followed by
// other digits ("4242424242424242 1234") are both caught, while a long unbroken run of
// digits (an order number, say) is not mistaken for a card by a chance window inside it.
func ContainsCardNumber(s string) bool {
	var (
		digits [64]byte
		ends   [64]int // ends[g] is the number of digits up to the end of group g
		n, g   int
	)
	check := func() bool {
		if n > 0 && g < len(ends) {
			ends[g] = n
			g++
		}
		found := false
		for first := 0; first < g && !found; first++ {
			start := 0
			if first > 0 {
				start = ends[first-1]
			}
			for last := first; last < g; last++ {
				size := ends[last] - start
				if size > 19 {
					break
				}
				if size >= 13 && luhn(digits[start:ends[last]]) {
					found = true
					break
				}
			}
		}
		n, g = 0, 0
		return found
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if n == len(digits) {
				if check() {
					return true
				}
			}
			digits[n] = c - '0'
			n++
		case (c == ' ' || c == '-') && n > 0 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			if g < len(ends) {
				ends[g] = n
				g++
			}
		default:
			if check() {
				return true
			}
		}
	}
	return check()
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}
