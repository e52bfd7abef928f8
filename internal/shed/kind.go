package shed

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// Kind is one kind of target whose objects carry traffic by host and path, as its provider
// (internal/provider/<name>) knows it. The shed server's table, the controller's claims and its
// host indexes read every kind through it, and name none.
type Kind interface {
	GroupKind() schema.GroupKind
	// Object is an empty object of the kind.
	Object() client.Object
	// NewList is an empty list of the kind.
	NewList() client.ObjectList
	// NamedRoutes are the routes an object names, whether or not a data plane serves it (what
	// the host indexes hold).
	NamedRoutes(obj client.Object) []Route
	// ReadCarrier reads, through c (a cache), what decides which of the kind's objects carry
	// traffic and returns the routes each carries. clusterWide: c may read cluster-scoped objects
	// (classes); a namespaced reader reads none.
	ReadCarrier(ctx context.Context, c client.Reader, clusterWide bool) (Carrier, error)
	// Follows are empty objects of the kinds whose changes change what the kind's objects carry
	// (an Ingress's IngressClasses, a route's Gateways), for the watches.
	Follows(clusterWide bool) []client.Object
	// CarryingChanged reports whether a change of an object, beyond its spec, labels and
	// annotations, changes whether it carries traffic (a gateway accepting a route).
	CarryingChanged(old, new client.Object) bool
}

// Carrier says which routes an object carries: none when no data plane routes it (an Ingress of
// a class that does not exist, a route no Gateway accepted), however its hosts overlap another
// namespace's.
type Carrier func(obj client.Object) []Route

// Carriers are the carriers of the kinds a cluster serves.
type Carriers map[schema.GroupKind]Carrier

// ReadCarriers reads the carrier of every kind.
func ReadCarriers(ctx context.Context, c client.Reader, kinds []Kind, clusterWide bool) (Carriers, error) {
	out := Carriers{}
	for _, k := range kinds {
		carrier, err := k.ReadCarrier(ctx, c, clusterWide)
		if err != nil {
			return nil, fmt.Errorf("reading what carries traffic among %s: %w", k.GroupKind(), err)
		}
		out[k.GroupKind()] = carrier
	}
	return out, nil
}

// Routes are the routes an object of kind gk carries (none: a kind not read).
func (c Carriers) Routes(gk schema.GroupKind, obj client.Object) []Route {
	if carrier := c[gk]; carrier != nil {
		return carrier(obj)
	}
	return nil
}

// TargetObjects reads a policy's targets of a kind that exist, in its namespace: those it names
// and those its targetSelector selects, never a companion a TrafficPolicy controls.
func TargetObjects(ctx context.Context, c client.Reader, policy *v1alpha1.TrafficPolicy, kind Kind) ([]client.Object, error) {
	gk := kind.GroupKind()
	var out []client.Object
	seen := map[string]bool{}
	if sel := policy.Spec.TargetSelector; sel != nil && sel.SelectsKind(gk.Group, gk.Kind) {
		selector, err := sel.LabelSelector()
		if err != nil {
			return nil, fmt.Errorf("targetSelector of %s/%s: %w", policy.Namespace, policy.Name, err)
		}
		list := kind.NewList()
		if err := c.List(ctx, list, client.InNamespace(policy.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return nil, fmt.Errorf("listing the %s objects %s/%s selects: %w", gk.Kind, policy.Namespace, policy.Name, err)
		}
		err = meta.EachListItem(list, func(o runtime.Object) error {
			obj := o.(client.Object)
			if !IsCompanion(obj) {
				seen[obj.GetName()] = true
				out = append(out, obj)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, ref := range policy.Spec.TargetRefs {
		if group, k := ref.GroupKind(); seen[ref.Name] || group != gk.Group || k != gk.Kind {
			continue
		}
		obj := kind.Object()
		err := c.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, obj)
		if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("reading %s %s/%s: %w", gk.Kind, policy.Namespace, ref.Name, err)
		}
		if err == nil {
			seen[ref.Name] = true
			out = append(out, obj)
		}
	}
	return out, nil
}
