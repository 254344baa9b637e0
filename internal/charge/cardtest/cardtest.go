// Package cardtest is a brute-force oracle for card number detection, for the tests and
// fuzz targets of the packages that refuse card data: slow, plain, and written apart from
// charge.ContainsCardNumber so that the two can be compared.
package cardtest

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Contains reports whether ASCII text s holds a card number: every span of whole digit
// groups of every run between letters, checked for length, Luhn and brand prefix. It
// does not judge other text: for s with non-ASCII characters it reports false.
func Contains(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	isLetter := func(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' }
	notDigit := func(r rune) bool { return r < '0' || r > '9' }
	for _, run := range strings.FieldsFunc(s, isLetter) {
		groups := strings.FieldsFunc(run, notDigit)
		for i := range groups {
			for j := i + 1; j <= len(groups); j++ {
				if n := strings.Join(groups[i:j], ""); len(n) >= 13 && len(n) <= 19 && Luhn(n) && Brand(n) {
					return true
				}
			}
		}
	}
	return false
}

// Luhn reports whether the decimal digits n pass the Luhn check.
func Luhn(n string) bool {
	sum := 0
	for i := range len(n) {
		v := int(n[len(n)-1-i] - '0')
		if i%2 == 1 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// Brand reports whether the digits n have a card brand's prefix and one of its lengths:
// the brand table of docs/api.md written out as prefix ranges.
func Brand(n string) bool {
	in := func(digits, lo, hi int) bool {
		p, _ := strconv.Atoi(n[:digits])
		return lo <= p && p <= hi
	}
	l := len(n)
	switch {
	case in(1, 4, 4):
		return l == 13 || l == 16 || l == 19
	case in(2, 51, 55), in(4, 2221, 2720):
		return l == 16
	case in(2, 34, 34), in(2, 37, 37):
		return l == 15
	case in(4, 2200, 2204), in(4, 3528, 3589), in(2, 62, 62), in(4, 6011, 6011), in(3, 644, 649), in(2, 65, 65):
		return l >= 16 || in(1, 6, 6) // Maestro's 6x from 13 digits
	case in(3, 300, 305), in(4, 3095, 3095), in(2, 36, 36), in(2, 38, 39):
		return l >= 14
	case in(2, 50, 50), in(2, 56, 69):
		return true
	}
	return false
}
