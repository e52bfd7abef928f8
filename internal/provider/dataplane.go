package provider

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// DataPlane names the proxy that serves a target ("ingress-nginx", "traefik", "envoy-gateway"):
// what an object means depends on it (the same Ingress answers an over-limit client with 503 on
// ingress-nginx and 429 on Traefik). A controller Floodgate does not know is named by its own
// controller name.
type DataPlane string

// Classed is a target provider that can tell which controllers serve an object of its kind, as
// its classes say: an Ingress's IngressClass (spec.controller), an HTTPRoute's parents'
// GatewayClasses (spec.controllerName). The kind's first registered provider is asked, for every
// data plane of the kind alike.
type Classed interface {
	// ServedBy are the controller names serving the object, once each, read from the cache
	// and writing nothing; none when none can be read (the object or its class is not found,
	// or the install cannot read classes).
	ServedBy(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref Ref) ([]string, error)
	// Classes are empty objects of the cluster-scoped kinds that say it (IngressClass,
	// GatewayClass): one created or deleted changes an object's data plane.
	Classes() []client.Object
}

// OnDataPlane is a target provider that writes one data plane's meaning of its kind (an
// Ingress's annotations as ingress-nginx reads them). A provider without it is portable: its
// kind's meaning on every conformant implementation.
type OnDataPlane interface {
	DataPlane() DataPlane
	// ControllerNames are the controller names the data plane's classes carry by default.
	ControllerNames() []string
}

// Resolved is which provider serves an object, and why.
type Resolved struct {
	Provider Provider
	// DataPlanes are the data planes serving the object, sorted (none: not known).
	DataPlanes []DataPlane
	// Warning says, when the provider is not the data plane's own and writes another data plane's
	// meaning, what that means for the target ("" otherwise).
	Warning string
}

// Strings are the data planes' names, for status.
func (r Resolved) Strings() []string {
	var out []string
	for _, d := range r.DataPlanes {
		out = append(out, string(d))
	}
	return out
}

// MapControllers adds controller names to the data planes they serve (the manager's
// --data-plane-controllers), over the providers' own defaults.
func (r *Registry) MapControllers(controllers map[string]DataPlane) {
	for name, d := range controllers {
		r.controllers[name] = d
	}
}

// DataPlaneOf is the data plane a controller name serves: the one it is mapped to, else the
// controller's own name.
func (r *Registry) DataPlaneOf(controller string) DataPlane {
	if d, ok := r.controllers[controller]; ok {
		return d
	}
	return DataPlane(controller)
}

// Resolve chooses the provider of an object: its data plane's own for its kind when all the
// controllers serving it are on one data plane that has one, else the kind's first registered
// (portable) provider, which then writes only what every data plane of the kind can take. A kind
// no provider serves, or not installed, is an error wrapping ErrKindNotInstalled (For).
func (r *Registry) Resolve(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref Ref) (Resolved, error) {
	lead, err := r.For(ref)
	if err != nil {
		return Resolved{}, err
	}
	res := Resolved{Provider: lead}
	classed, ok := lead.(Classed)
	if !ok {
		return res, nil
	}
	controllers, err := classed.ServedBy(ctx, policy, ref)
	if err != nil {
		return res, fmt.Errorf("reading the data plane of %s: %w", ref, err)
	}
	for _, c := range controllers {
		if d := r.DataPlaneOf(c); !slices.Contains(res.DataPlanes, d) {
			res.DataPlanes = append(res.DataPlanes, d)
		}
	}
	sort.Slice(res.DataPlanes, func(i, j int) bool { return res.DataPlanes[i] < res.DataPlanes[j] })
	if len(res.DataPlanes) != 1 {
		if len(res.DataPlanes) > 1 {
			res.Warning = fmt.Sprintf("served by several data planes (%s): the levers write only what every one of them can take",
				strings.Join(res.Strings(), ", "))
		}
		return res, nil
	}
	d := res.DataPlanes[0]
	for _, p := range r.providers {
		if on, ok := p.(OnDataPlane); ok && p.GroupKind() == ref.GroupKind() && on.DataPlane() == d {
			res.Provider = p
			return res, nil
		}
	}
	if on, ok := lead.(OnDataPlane); ok {
		res.Warning = fmt.Sprintf("served by %s, which has no provider of its own in Floodgate: %s's settings are written, "+
			"which %s may read differently or ignore (capabilities are %s's)", d, on.DataPlane(), d, on.DataPlane())
	}
	return res, nil
}
