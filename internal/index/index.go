// Package index lists objects through a field index of the manager's cache, and still works
// with a client that has no such index (a direct client, as previews and some tests use): it
// then lists without the index and keeps the objects the index function maps to the value.
package index

import (
	"context"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// List fills list with the objects whose index field holds value. fn is the index function the
// field was registered with.
func List(ctx context.Context, c client.Reader, list client.ObjectList, field, value string, fn client.IndexerFunc, opts ...client.ListOption) error {
	err := c.List(ctx, list, append(slices.Clone(opts), client.MatchingFields{field: value})...)
	if !apierrors.IsBadRequest(err) {
		return err
	}
	if err := c.List(ctx, list, opts...); err != nil {
		return err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	kept := items[:0]
	for _, o := range items {
		if obj, ok := o.(client.Object); ok && slices.Contains(fn(obj), value) {
			kept = append(kept, o)
		}
	}
	return meta.SetList(list, kept)
}
