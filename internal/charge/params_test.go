package charge

import (
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestCreateParamsValidate(t *testing.T) {
	t.Parallel()
	valid := func() CreateParams {
		return CreateParams{Amount: ptr(int64(1999)), Currency: ptr("USD"), PaymentMethod: ptr("pm_card_visa")}
	}
	cases := []struct {
		name  string
		edit  func(*CreateParams)
		code  string
		param string
	}{
		{"valid", func(*CreateParams) {}, "", ""},
		{"max amount", func(p *CreateParams) { p.Amount = ptr(int64(MaxAmount)) }, "", ""},
		{"amount over max", func(p *CreateParams) { p.Amount = ptr(int64(MaxAmount + 1)) }, CodeParameterInvalid, "amount"},
		{"negative amount", func(p *CreateParams) { p.Amount = ptr(int64(-5)) }, CodeParameterInvalid, "amount"},
		{"no amount", func(p *CreateParams) { p.Amount = nil }, CodeParameterMissing, "amount"},
		{"jpy", func(p *CreateParams) { p.Currency = ptr("jpy") }, "", ""},
		{"not a currency", func(p *CreateParams) { p.Currency = ptr("abc") }, CodeParameterInvalid, "currency"},
		{"long currency", func(p *CreateParams) { p.Currency = ptr("usdd") }, CodeParameterInvalid, "currency"},
		{"currency with control character", func(p *CreateParams) { p.Currency = ptr("us\x00") }, CodeParameterInvalid, "currency"},
		{"payment method with space", func(p *CreateParams) { p.PaymentMethod = ptr("pm_a b") }, CodeParameterInvalid, "payment_method"},
		{"payment method with newline", func(p *CreateParams) { p.PaymentMethod = ptr("pm_a\n") }, CodeParameterInvalid, "payment_method"},
		{"customer", func(p *CreateParams) { p.Customer = ptr("cus 42   é") }, "", ""},
		{"customer with tab", func(p *CreateParams) { p.Customer = ptr("a\tb") }, CodeParameterInvalid, "customer"},
		{"customer with C1 control", func(p *CreateParams) { p.Customer = ptr("a\u0085b") }, CodeParameterInvalid, "customer"},
		{"description with control characters", func(p *CreateParams) { p.Description = ptr("line\nbreak\x00\x7f") }, "", ""},
		{"bare prefix", func(p *CreateParams) { p.PaymentMethod = ptr("pm_") }, CodeParameterInvalid, "payment_method"},
		{"description of 1000 runes", func(p *CreateParams) { p.Description = ptr(strings.Repeat("é", 1000)) }, "", ""},
		{"empty metadata key", func(p *CreateParams) { p.Metadata = map[string]string{"": "x"} }, CodeParameterInvalid, "metadata"},
		{"printable metadata keys", func(p *CreateParams) {
			p.Metadata = map[string]string{"order.id": "1", "$ref": "2", "a b": "3", strings.Repeat("é", 40): "4", "k": "tab\there\x00"}
		}, "", ""},
		{"metadata key with newline", func(p *CreateParams) { p.Metadata = map[string]string{"a\nb": "x"} }, CodeParameterInvalid, "metadata"},
		{"metadata key with NUL", func(p *CreateParams) { p.Metadata = map[string]string{"\x00": "x"} }, CodeParameterInvalid, "metadata"},
		{"metadata key with DEL", func(p *CreateParams) { p.Metadata = map[string]string{"a\x7f": "x"} }, CodeParameterInvalid, "metadata"},
		{"metadata key of 41 characters", func(p *CreateParams) { p.Metadata = map[string]string{strings.Repeat("k", 41): "x"} }, CodeParameterInvalid, "metadata"},
	}
	for _, tc := range cases {
		p := valid()
		tc.edit(&p)
		err := p.Validate()
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("%s: unexpected %v", tc.name, err)
		case tc.code != "" && (err == nil || err.Code != tc.code || err.Param != tc.param):
			t.Errorf("%s: got %v, want %s (%s)", tc.name, err, tc.code, tc.param)
		}
	}
}

func TestValidCurrency(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"usd", "USD", "Usd", "eur", "jpy", "chf", "clp", "mxn", "uyu", "ves", "ved", "mru", "stn", "sle", "zwg",
		"xaf", "xcd", "xcg", "XCG", "xof", "xpf"} {
		if !validCurrency(code) {
			t.Errorf("validCurrency(%q) = false, want true", code)
		}
	}
	for _, code := range []string{"", "us", "usdd", "abc", "zzz", "u$d", "us\x00", "İsk",
		"xxx", "XTS", "xau", "xag", "xpd", "xpt", "xdr", "xba", "xbb", "xbc", "xbd", "xsu", "xua", // no currency, test, metals, units
		"bov", "che", "chw", "clf", "cou", "mxv", "usn", "uyi", "uyw", // funds
		"hrk", "ang", "zwl", "sll", "cuc", "bgn", "dem", "frf", "vef", "mro", "std", "byr", "ltl", "eek", // withdrawn
	} {
		if validCurrency(code) {
			t.Errorf("validCurrency(%q) = true, want false", code)
		}
	}
	if len(activeCurrencies) != 155 {
		t.Errorf("%d active currencies, want 155: a code lost or doubled in the table", len(activeCurrencies))
	}
}

func TestCreateParamsCharge(t *testing.T) {
	t.Parallel()
	p := CreateParams{Amount: ptr(int64(500)), Currency: ptr("EUR"), PaymentMethod: ptr("pm_card_visa")}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.FixedZone("x", 3600))
	c := p.Charge("ch_1", "m", func() time.Time { return now })
	if c.Currency != "eur" || !c.Capture || c.Status != StatusPending || c.Metadata == nil || c.CreatedAt.Location() != time.UTC {
		t.Fatalf("unexpected charge %+v", c)
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	allowed := map[[2]Status]bool{
		{StatusPending, StatusSucceeded}: true, {StatusPending, StatusFailed}: true,
		{StatusPending, StatusRequiresCapture}: true, {StatusRequiresCapture, StatusSucceeded}: true,
		{StatusRequiresCapture, StatusCanceled}: true,
	}
	all := []Status{StatusPending, StatusSucceeded, StatusFailed, StatusRequiresCapture, StatusCanceled}
	for _, from := range all {
		for _, to := range all {
			if got := CanTransition(from, to); got != allowed[[2]Status{from, to}] {
				t.Errorf("CanTransition(%s, %s) = %v", from, to, got)
			}
		}
	}
}

func TestIDsSortByCreation(t *testing.T) {
	t.Parallel()
	prev := NewID(PrefixCharge)
	for range 100_000 {
		id := NewID(PrefixCharge)
		if id <= prev {
			t.Fatalf("%s not after %s", id, prev)
		}
		if !ValidID(PrefixCharge, id) || ValidID(PrefixEvent, id) {
			t.Fatalf("ValidID wrong for %s", id)
		}
		prev = id
	}
}
