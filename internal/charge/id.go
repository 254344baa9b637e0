package charge

import (
	"fmt"
	"strings"

	"go.jetify.com/typeid"
)

// The type prefixes of API.md, "Conventions".
const (
	PrefixCharge          = "ch"
	PrefixRefund          = "re"
	PrefixEvent           = "evt"
	PrefixWebhookEndpoint = "we"
	PrefixWebhookDelivery = "wd"
)

// NewID returns a new id with the given type prefix. IDs are TypeIDs (a UUIDv7 in
// Crockford base32 after the prefix): unique without coordination, and they sort by
// creation time, which is what cursor pagination relies on. typeid is used rather than a
// hand-rolled ULID because it is a maintained, specified format with a monotonic source.
func NewID(prefix string) string {
	id, err := typeid.WithPrefix(prefix)
	if err != nil {
		// Only a malformed constant prefix or an exhausted entropy source gets here.
		panic(fmt.Sprintf("charge: generating %s id: %v", prefix, err))
	}
	return id.String()
}

// ValidID reports whether s is a well-formed id with the given prefix.
func ValidID(prefix, s string) bool {
	if !strings.HasPrefix(s, prefix+"_") {
		return false
	}
	id, err := typeid.FromString(s)
	return err == nil && id.Prefix() == prefix
}
