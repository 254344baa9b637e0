package charge

import (
	"testing"
)

// A page of refunds: only the charge asked for, newest first, strictly older than the
// cursor, at most the limit (10 when none is given), and whether more remain.
func TestRefundListPage(t *testing.T) {
	t.Parallel()
	var rs []Refund
	for i := range 25 {
		ch := "ch_a"
		if i%5 == 0 {
			ch = "ch_b"
		}
		rs = append(rs, Refund{ID: NewID(PrefixRefund), Charge: ch})
	}
	ids := func(page []Refund) []string {
		out := []string{}
		for _, r := range page {
			out = append(out, r.ID)
		}
		return out
	}

	page, more := RefundListParams{Charge: "ch_a"}.Page(rs)
	if len(page) != 10 || !more {
		t.Fatalf("default limit: got %d refunds, more %v; want 10, true", len(page), more)
	}
	for i, r := range page {
		if r.Charge != "ch_a" {
			t.Fatalf("refund %d is of %s", i, r.Charge)
		}
		if i > 0 && r.ID >= page[i-1].ID {
			t.Fatalf("not newest first: %v", ids(page))
		}
	}
	rest, more := RefundListParams{Charge: "ch_a", Limit: 100, StartingAfter: page[9].ID}.Page(rs)
	if len(rest) != 10 || more {
		t.Fatalf("after the first page: got %d, more %v; want the other 10 of ch_a, false", len(rest), more)
	}
	if all, _ := (RefundListParams{Limit: 100}).Page(rs); len(all) != 25 {
		t.Fatalf("no charge: got %d, want all 25", len(all))
	}
	if none, more := (RefundListParams{Charge: "ch_c"}).Page(rs); none == nil || len(none) != 0 || more {
		t.Fatalf("another charge: got %v, %v; want an empty page", none, more)
	}
}
