package mongostore

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/billing/billing/internal/charge"
)

// Metadata keys are any printable text (docs/api.md), "$where" and "order.id" included, which
// MongoDB and FerretDB refuse as field names. So metadata is stored as an array of
// {k, v} pairs in key order, and read back from that or from the plain document that
// stores before this one wrote.
type metadataPair struct {
	Key   string `bson:"k"`
	Value string `bson:"v"`
}

var (
	metadataType = reflect.TypeFor[charge.Metadata]()
	pairsType    = reflect.TypeFor[[]metadataPair]()
)

// registry is the BSON registry of the store's client and of every document it marshals
// itself: the default one, with metadata stored as pairs. A registry is safe for
// concurrent use once built.
var registry = newRegistry()

func newRegistry() *bson.Registry {
	r := bson.NewRegistry()
	r.RegisterTypeEncoder(metadataType, bson.ValueEncoderFunc(encodeMetadata))
	r.RegisterTypeDecoder(metadataType, bson.ValueDecoderFunc(decodeMetadata))
	return r
}

func encodeMetadata(ec bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
	if v.IsNil() {
		return vw.WriteNull()
	}
	m := v.Interface().(charge.Metadata)
	pairs := make([]metadataPair, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		pairs = append(pairs, metadataPair{Key: k, Value: m[k]})
	}
	enc, err := ec.LookupEncoder(pairsType)
	if err != nil {
		return err
	}
	return enc.EncodeValue(ec, vw, reflect.ValueOf(pairs))
}

func decodeMetadata(dc bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
	switch vr.Type() {
	case bson.TypeNull:
		v.SetZero()
		return vr.ReadNull()
	case bson.TypeArray:
		var pairs []metadataPair
		if err := decodeAs(dc, vr, &pairs); err != nil {
			return err
		}
		m := make(charge.Metadata, len(pairs))
		for _, p := range pairs {
			m[p.Key] = p.Value
		}
		v.Set(reflect.ValueOf(m))
		return nil
	case bson.TypeEmbeddedDocument:
		var m map[string]string
		if err := decodeAs(dc, vr, &m); err != nil {
			return err
		}
		v.Set(reflect.ValueOf(charge.Metadata(m)))
		return nil
	}
	return fmt.Errorf("decoding metadata: unexpected BSON type %s", vr.Type())
}

// decodeAs decodes the value vr reads into *out with the registry's own decoder.
func decodeAs[T any](dc bson.DecodeContext, vr bson.ValueReader, out *T) error {
	dec, err := dc.LookupDecoder(reflect.TypeFor[T]())
	if err != nil {
		return err
	}
	return dec.DecodeValue(dc, vr, reflect.ValueOf(out).Elem())
}
