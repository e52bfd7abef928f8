package drill

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/registered"
)

// What a drill asks of the providers of the kinds it follows, copies and restores. Each is
// declared here, where it is used, and implemented by a provider for its own kind
// (internal/provider/<name>/drill.go): the drill itself knows no provider's kind.

// timelined is a provider whose objects' timeline rows print fields of their own, besides the
// annotations every followed object's rows print.
type timelined interface {
	TimelineFields(o *unstructured.Unstructured) provider.Fields
}

// rehearsed is a provider whose objects need others in a rehearsal (the Services they route
// to, their gateways), which it copies from the live cluster through copyObject.
type rehearsed interface {
	CopyNeighbours(ctx context.Context, o *unstructured.Unstructured, copyObject provider.CopyFunc) error
}

// crdSetted is a provider whose kind is another project's: the set of CRDs (test/crds) a
// rehearsal of its objects installs.
type crdSetted interface {
	CRDSet() string
}

// held is an autoscaler provider whose hold a drill's state shows: its minimum and whether its
// scale-down is off.
type held interface {
	Hold(o *unstructured.Unstructured) (minReplicas int64, scaleDownDisabled bool)
}

// kind is one kind a provider edits, with the version a drill reads it at.
type kind struct {
	gvk      schema.GroupVersionKind
	provider provider.Provider
}

// providerKinds are the kinds of every provider (targets first), one per kind, each at the
// version its provider reads; whether the cluster behind c serves them is asked when they are read.
func providerKinds(c client.Client) []kind {
	reg := registered.NewRegistry(c)
	var out []kind
	for _, p := range slices.Concat(reg.Kinds(provider.Target), reg.Kinds(provider.Autoscaler)) {
		gvk, err := apiutil.GVKForObject(p.Object(), c.Scheme())
		if err != nil {
			continue // a provider's kind always has a version; one without is not followed
		}
		out = append(out, kind{gvk: gvk, provider: p})
	}
	return out
}

// kindNamed is the kind of kinds named kindName (in group, when group is not ""), if a provider
// edits it.
func kindNamed(kinds []kind, group, kindName string) (kind, bool) {
	for _, k := range kinds {
		if k.gvk.Kind == kindName && (group == "" || k.gvk.Group == group) {
			return k, true
		}
	}
	return kind{}, false
}

// timelineFields are the fields of o its provider prints in a timeline (none when it prints
// none of its own).
func (k kind) timelineFields(o *unstructured.Unstructured) provider.Fields {
	if t, ok := k.provider.(timelined); ok {
		return t.TimelineFields(o)
	}
	return nil
}
