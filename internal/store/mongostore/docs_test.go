package mongostore

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/webhook"
)

// The documents of every sample, and the fields the updates write, are byte for byte
// those of testdata/documents.golden: the shape documents are stored in, which documents
// already stored and the indexes rely on. The golden file was written by the store as it
// was when the domain types carried the bson tags.
func TestDocumentShapes(t *testing.T) {
	t.Parallel()
	golden, err := os.ReadFile(filepath.Join("testdata", "documents.golden"))
	require.NoError(t, err)
	want := map[string]string{}
	var wantNames []string
	for _, sec := range strings.Split(strings.TrimPrefix(string(golden), "## "), "\n\n## ") {
		name, doc, _ := strings.Cut(sec, "\n")
		want[name], wantNames = strings.TrimSuffix(doc, "\n\n"), append(wantNames, name)
	}

	var names []string
	shape := func(name string, doc any) {
		names = append(names, name)
		assert.Equal(t, want[name], extJSON(t, doc), "the document of %s", name)
	}
	for _, s := range samples() {
		shape(s.name, newDoc(t, s.value))
		switch v := s.value.(type) {
		case charge.Charge:
			shape(s.name+", saved", savedFields(v))
		case webhook.Endpoint:
			shape(s.name+", secrets set", secretsFields(v.Secrets, v.UpdatedAt))
		}
	}
	require.Equal(t, wantNames, names, "the samples of the golden file")
}

// A value stored and read back is the value, less what is not stored (object names, an
// endpoint's plain secret).
func TestDocumentRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			doc := newDoc(t, s.value)
			raw := encode(t, doc)
			read := reflect.New(reflect.TypeOf(doc))
			dec := bson.NewDecoder(bson.NewDocumentReader(bytes.NewReader(raw)))
			dec.SetRegistry(registry)
			require.NoError(t, dec.Decode(read.Interface()))
			require.Equal(t, asStored(s.value), fromDoc(t, read.Elem().Interface()))
		})
	}
}

// The samples set every field of every type they hold, somewhere: a field added to a
// domain type fails here until a sample sets it, and then the round trip until its
// document type stores it.
func TestSamplesSetEveryField(t *testing.T) {
	t.Parallel()
	set := map[reflect.Type]map[string]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Struct:
			if v.Type().PkgPath() == "time" {
				return
			}
			if set[v.Type()] == nil {
				set[v.Type()] = map[string]bool{}
			}
			for _, f := range reflect.VisibleFields(v.Type()) {
				fv := v.FieldByIndex(f.Index)
				// A bool's zero is one of its two values.
				if !fv.IsZero() || f.Type.Kind() == reflect.Bool {
					set[v.Type()][f.Name] = true
				}
				walk(fv)
			}
		}
	}
	for _, s := range samples() {
		walk(reflect.ValueOf(s.value))
	}
	for typ, fields := range set {
		for _, f := range reflect.VisibleFields(typ) {
			assert.True(t, fields[f.Name], "no sample sets %s.%s", typ, f.Name)
		}
	}
}

func newDoc(t *testing.T, v any) any {
	switch v := v.(type) {
	case charge.Charge:
		return newChargeDoc(v)
	case charge.Transition:
		return newTransitionDoc(v)
	case charge.Refund:
		return newRefundDoc(v)
	case charge.Event:
		return newEventDoc(v)
	case charge.LedgerEntry:
		return newLedgerEntryDoc(v)
	case charge.DeadLetter:
		return newDeadLetterDoc(v)
	case webhook.Endpoint:
		return newEndpointDoc(v)
	case webhook.Delivery:
		return newDeliveryDoc(v)
	}
	t.Fatalf("no document type for %T", v)
	return nil
}

func fromDoc(t *testing.T, d any) any {
	switch d := d.(type) {
	case chargeDoc:
		return d.toCharge()
	case transitionDoc:
		return d.toTransition()
	case refundDoc:
		return d.toRefund()
	case eventDoc:
		return d.toEvent()
	case ledgerEntryDoc:
		return d.toLedgerEntry()
	case deadLetterDoc:
		return d.toDeadLetter()
	case endpointDoc:
		return d.toEndpoint()
	case deliveryDoc:
		return d.toDelivery()
	}
	t.Fatalf("no domain type for %T", d)
	return nil
}

// asStored returns v without what the engine does not store.
func asStored(v any) any {
	storedRefund := func(r charge.Refund) charge.Refund { r.Object = ""; return r }
	storedCharge := func(c charge.Charge) charge.Charge {
		c.Object = ""
		c.Refunds = mapSlice(c.Refunds, storedRefund)
		return c
	}
	switch v := v.(type) {
	case charge.Charge:
		return storedCharge(v)
	case charge.Refund:
		return storedRefund(v)
	case charge.Transition:
		v.Refund = mapPtr(v.Refund, storedRefund)
		return v
	case charge.Event:
		v.Object = ""
		v.Data.Object = storedCharge(v.Data.Object)
		v.Data.Refund = mapPtr(v.Data.Refund, storedRefund)
		return v
	case webhook.Endpoint:
		v.Object, v.Secret = "", ""
		return v
	case webhook.Delivery:
		v.Object = ""
		return v
	}
	return v
}

// encode marshals v as the store does, with its registry.
func encode(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := bson.NewEncoder(bson.NewDocumentWriter(&buf))
	enc.SetRegistry(registry)
	require.NoError(t, enc.Encode(v))
	return buf.Bytes()
}

// extJSON is v as the store marshals it, in canonical extended JSON (which tells int32
// from int64), indented.
func extJSON(t *testing.T, v any) string {
	t.Helper()
	ext, err := bson.MarshalExtJSONIndent(bson.Raw(encode(t, v)), true, false, "", "  ")
	require.NoError(t, err)
	return string(ext)
}
