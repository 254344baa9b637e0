package client

import (
	"context"
	"errors"
	"iter"
	"maps"
	"net/url"
)

// page is the list object of the API: one page of a list.
type page[T any] struct {
	HasMore bool `json:"has_more"`
	Data    []T  `json:"data"`
}

// list yields the objects of the list at path, page after page (query q, whose
// starting_after it moves on), until the last page or the first error, which it yields
// with a zero T. id names an object for starting_after.
func list[T any](ctx context.Context, c *Client, path string, q url.Values, id func(T) string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		q := maps.Clone(q) // each iteration starts where it was asked to
		for {
			p, err := get[page[T]](ctx, c, path, q, nil)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, v := range p.Data {
				if !yield(v, nil) {
					return
				}
			}
			if !p.HasMore {
				return
			}
			if len(p.Data) == 0 {
				var zero T
				yield(zero, errors.New("client: "+path+": an empty page said there is more"))
				return
			}
			q.Set("starting_after", id(p.Data[len(p.Data)-1]))
		}
	}
}
