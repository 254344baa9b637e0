package webhooksig_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/billing/billing/webhooksig"
)

// The test vector of the Standard Webhooks specification.
func TestSpecVector(t *testing.T) {
	t.Parallel()
	key, err := webhooksig.DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := webhooksig.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func header(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

func TestVerify(t *testing.T) {
	t.Parallel()
	oldSecret, newSecret := "whsec_"+base64.StdEncoding.EncodeToString([]byte("old-key-0123456789abcdef0123456")), "whsec_"+base64.StdEncoding.EncodeToString([]byte("new-key-0123456789abcdef0123456"))
	oldKey, _ := webhooksig.DecodeSecret(oldSecret)
	newKey, _ := webhooksig.DecodeSecret(newSecret)
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	v, err := webhooksig.NewVerifier(newSecret)
	if err != nil {
		t.Fatal(err)
	}
	v = v.WithClock(func() time.Time { return now })

	// An independent computation of the expected signature.
	mac := hmac.New(sha256.New, newKey)
	mac.Write([]byte("evt_1." + strconv.FormatInt(now.Unix(), 10) + "." + string(body)))
	independent := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))

	cases := []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"valid", header("evt_1", now, independent), body, nil},
		{"both secrets during rotation", header("evt_1", now, webhooksig.SignatureHeader([][]byte{oldKey, newKey}, "evt_1", now, body)), body, nil},
		{"old secret only", header("evt_1", now, webhooksig.Sign(oldKey, "evt_1", now, body)), body, webhooksig.ErrNoMatch},
		{"tampered body", header("evt_1", now, independent), []byte(`{"id":"evt_2"}`), webhooksig.ErrNoMatch},
		{"other id", header("evt_2", now, independent), body, webhooksig.ErrNoMatch},
		{"too old", header("evt_1", now.Add(-6*time.Minute), webhooksig.Sign(newKey, "evt_1", now.Add(-6*time.Minute), body)), body, webhooksig.ErrInvalidTimestamp},
		{"from the future", header("evt_1", now.Add(6*time.Minute), webhooksig.Sign(newKey, "evt_1", now.Add(6*time.Minute), body)), body, webhooksig.ErrInvalidTimestamp},
		{"missing headers", http.Header{}, body, webhooksig.ErrMissingHeaders},
		{"v2 signature ignored", header("evt_1", now, "v2,"+independent[3:]), body, webhooksig.ErrNoMatch},
	}
	for _, tc := range cases {
		if err := v.Verify(tc.h, tc.body); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := webhooksig.NewVerifier("sk_nope"); !errors.Is(err, webhooksig.ErrInvalidSecret) {
		t.Errorf("bad secret accepted: %v", err)
	}
}
