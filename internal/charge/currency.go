package charge

import "strings"

// activeCurrencies are the currencies of ISO 4217 List One in use as of December 2026:
// the codes for no currency, testing, precious metals, special drawing rights, bond
// market units and funds (XXX, XTS, XAU, XAG, XPD, XPT, XDR, XBA…XBD, XSU, XUA, BOV, CHE,
// CHW, CLF, COU, MXV, USN, UYI, UYW) are left out, as are withdrawn currencies (HRK 2023,
// ZWL 2024, ANG 2025 for XCG, BGN 2026 for EUR, SLL, CUC).
//
// golang.org/x/text/currency cannot answer this: its tables (CLDR 32) accept XXX, XTS,
// metals and funds, still know HRK and ANG, and lack VES, MRU, VED, SLE, ZWG and XCG.
var activeCurrencies = func() map[string]bool {
	set := map[string]bool{}
	for _, code := range strings.Fields(`
		AED AFN ALL AMD AOA ARS AUD AWG AZN
		BAM BBD BDT BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
		CAD CDF CHF CLP CNY COP CRC CUP CVE CZK
		DJF DKK DOP DZD
		EGP ERN ETB EUR
		FJD FKP
		GBP GEL GHS GIP GMD GNF GTQ GYD
		HKD HNL HTG HUF
		IDR ILS INR IQD IRR ISK
		JMD JOD JPY
		KES KGS KHR KMF KPW KRW KWD KYD KZT
		LAK LBP LKR LRD LSL LYD
		MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN
		NAD NGN NIO NOK NPR NZD
		OMR
		PAB PEN PGK PHP PKR PLN PYG
		QAR
		RON RSD RUB RWF
		SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL
		THB TJS TMT TND TOP TRY TTD TWD TZS
		UAH UGX USD UYU UZS
		VED VES VND VUV
		WST
		XAF XCD XCG XOF XPF
		YER
		ZAR ZMW ZWG`) {
		set[code] = true
	}
	return set
}()

// validCurrency reports whether s is an active currency's ISO 4217 code, in any case.
func validCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	var upper [3]byte
	for i := range 3 {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		upper[i] = c
	}
	return activeCurrencies[string(upper[:])]
}
