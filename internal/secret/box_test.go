package secret_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/billing/billing/internal/secret"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	key, err := secret.ParseKey(secret.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	box, err := secret.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("whsec_c2VjcmV0")
	a, _ := box.Seal(plain)
	b, _ := box.Seal(plain)
	if bytes.Equal(a, b) || bytes.Contains(a, plain) {
		t.Fatal("sealing must be randomized and hide the plaintext")
	}
	got, err := box.Open(a)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q %v", got, err)
	}
	a[len(a)-1] ^= 1
	if _, err := box.Open(a); !errors.Is(err, secret.ErrOpen) {
		t.Fatalf("tampered value opened: %v", err)
	}
	other, _ := secret.ParseKey(secret.NewKey())
	otherBox, _ := secret.NewBox(other)
	if _, err := otherBox.Open(b); !errors.Is(err, secret.ErrOpen) {
		t.Fatalf("opened under another key: %v", err)
	}
	if _, err := secret.ParseKey("c2hvcnQ="); err == nil {
		t.Fatal("short key accepted")
	}
}
