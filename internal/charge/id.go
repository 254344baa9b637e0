package charge

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"go.jetify.com/typeid"
	"go.jetify.com/typeid/base32"
)

// The type prefixes of docs/api.md, "Conventions".
const (
	PrefixCharge          = "ch"
	PrefixRefund          = "re"
	PrefixEvent           = "evt"
	PrefixWebhookEndpoint = "we"
	PrefixWebhookDelivery = "wd"
	// PrefixOperation names an accepted capture or cancel; it is internal, never shown.
	PrefixOperation = "op"
)

// NewID returns a new id with the given type prefix: a TypeID (prefix, "_", a UUIDv7 in
// Crockford base32), a specified format that typeid parses and validates. The UUIDv7 is
// made here rather than by the library because cursor pagination needs ids that sort by
// creation time strictly, also within one millisecond: rand_a holds a counter (RFC 9562,
// section 6.2, method 1) that starts at a random value below 2^11 each millisecond, and
// whose overflow borrows the next millisecond, so ids from one process never go backwards.
func NewID(prefix string) string {
	return prefix + "_" + base32.Encode(ids.next())
}

// ids is the process's id source: like crypto/rand, one per process by nature.
var ids idSource

type idSource struct {
	mu      sync.Mutex
	lastMS  uint64
	counter uint16
}

func (s *idSource) next() [16]byte {
	var u [16]byte
	if _, err := rand.Read(u[6:]); err != nil {
		panic("charge: reading random bytes: " + err.Error()) // crypto/rand never fails on Linux
	}
	s.mu.Lock()
	ms := uint64(time.Now().UnixMilli())
	switch {
	case ms > s.lastMS:
		s.lastMS = ms
		s.counter = binary.BigEndian.Uint16(u[6:8]) & 0x07ff
	case s.counter < 0x0fff:
		s.counter++
	default:
		s.lastMS++
		s.counter = 0
	}
	ms, counter := s.lastMS, s.counter
	s.mu.Unlock()

	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(counter>>8) // version 7
	u[7] = byte(counter)
	u[8] = u[8]&0x3f | 0x80 // variant RFC 9562
	return u
}

// ValidID reports whether s is a well-formed id with the given prefix.
func ValidID(prefix, s string) bool {
	if !strings.HasPrefix(s, prefix+"_") {
		return false
	}
	id, err := typeid.FromString(s)
	return err == nil && id.Prefix() == prefix
}
