// Package index lists objects through a field index of the manager's cache, and still works
// with a client that has no such index (a direct client, as previews and some tests use): it
// then lists without the index and keeps the objects the index function maps to the value.
package index

import (
	"context"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
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

// Lookups say which lists an index serves: lists in one namespace, or lists across namespaces.
type Lookups int

const (
	// InOneNamespace serves lists with client.InNamespace.
	InOneNamespace Lookups = iota
	// AcrossNamespaces serves lists without a namespace.
	AcrossNamespaces
)

// Register adds fn as the field index of obj's informer, keyed as the controller-runtime cache
// looks a field up ("field:NAME", values "NAMESPACE/VALUE" in one namespace, "__all_namespaces/VALUE"
// across them), for the lookups named only. controller-runtime's IndexField keeps both keys for
// every value: for a fleet of Ingresses each with hosts, rules and upstreams of its own, the index
// sets were half the manager's heap (BENCHMARKS.md, e).
func Register(ctx context.Context, informers cache.Informers, obj client.Object, field string, fn client.IndexerFunc, lookups Lookups) error {
	informer, err := informers.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	return informer.AddIndexers(toolscache.Indexers{"field:" + field: func(raw any) ([]string, error) {
		o, ok := raw.(client.Object)
		if !ok {
			return nil, nil
		}
		values := fn(o)
		keys := make([]string, 0, len(values))
		for _, v := range values {
			if lookups == InOneNamespace && o.GetNamespace() != "" {
				keys = append(keys, o.GetNamespace()+"/"+v)
			} else {
				keys = append(keys, "__all_namespaces/"+v)
			}
		}
		return keys, nil
	}})
}
