package mongostore

// Each collection has a document type of its own (chargeDoc, transitionDoc, ... beside the
// methods that use it), made from the domain type by newChargeDoc and so on and turned back
// by toCharge: the domain knows nothing of storage. Their tags, field order and omitempty
// are the stored shape, which stored documents and the indexes rely on; the golden file
// testdata/documents.golden pins it.

// mapSlice returns f of each element of in, and nil for nil: where a field has no
// omitempty a nil slice is stored as null and an empty one as [], and reads give back
// what was stored.
func mapSlice[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// mapPtr returns a pointer to f of *p, and nil for nil.
func mapPtr[T, U any](p *T, f func(T) U) *U {
	if p == nil {
		return nil
	}
	u := f(*p)
	return &u
}
