package webhooksig_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/billing/billing/webhooksig"
)

// A merchant's webhook handler: verify the signature on the raw body before trusting it,
// and dedupe on webhook-id, which is the same on every retry.
func Example() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	verifier, err := webhooksig.NewVerifier(secret)
	if err != nil {
		panic(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable", http.StatusBadRequest)
			return
		}
		if err := verifier.Verify(r.Header, body); err != nil {
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		fmt.Println("verified", r.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusNoContent)
	})

	// What the billing API sends:
	body := []byte(`{"id":"evt_1","object":"event","type":"charge.succeeded"}`)
	key, _ := webhooksig.DecodeSecret(secret)
	now := time.Now()
	req := httptest.NewRequest("POST", "/hooks", strings.NewReader(string(body)))
	req.Header.Set("webhook-id", "evt_1")
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", webhooksig.Sign(key, "evt_1", now, body))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// verified evt_1
	// 204
}
