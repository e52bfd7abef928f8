package ingressnginx

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"floodgate.dev/floodgate/internal/provider"
)

// What a drill knows of an Ingress. Its levers are annotations, which a drill's timeline prints
// for every kind, so an Ingress adds no fields of its own.

var gvkService = schema.GroupVersionKind{Version: "v1", Kind: "Service"}

// CopyNeighbours copies, for a rehearsal, the Services an Ingress routes to (its default
// backend's and its paths').
func (p *Provider) CopyNeighbours(ctx context.Context, ing *unstructured.Unstructured, copyObject provider.CopyFunc) error {
	var names []string
	if n, ok, _ := unstructured.NestedString(ing.Object, "spec", "defaultBackend", "service", "name"); ok {
		names = append(names, n)
	}
	rules, _, _ := unstructured.NestedSlice(ing.Object, "spec", "rules")
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		paths, _, _ := unstructured.NestedSlice(rule, "http", "paths")
		for _, path := range paths {
			pm, _ := path.(map[string]any)
			if n, ok, _ := unstructured.NestedString(pm, "backend", "service", "name"); ok {
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		if _, err := copyObject(ctx, gvkService, ing.GetNamespace(), n); err != nil {
			return err
		}
	}
	return nil
}
