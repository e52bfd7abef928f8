package provider

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"floodgate.dev/floodgate/internal/shed"
)

// Registry holds a provider for every kind Floodgate edits. A kind whose CustomResourceDefinition
// is not installed (KEDA, Gateway API) is known but unavailable: the manager does not watch it
// (a watch on a missing CRD keeps a manager from starting), and a policy that names it is told
// which CRD is missing.
//
// A kind may have several providers, one per data plane (OnDataPlane): Resolve picks an object's
// by the controllers serving it. The first registered of a kind is its portable provider, the
// one an object gets when its data plane has none of its own or cannot be known.
type Registry struct {
	providers []Provider
	missing   map[schema.GroupKind]string
	// controllers map controller names to the data planes they serve.
	controllers map[string]DataPlane
}

// NewRegistry registers providers (registered.NewRegistry lists them), each data plane's
// controller names with it.
func NewRegistry(providers ...Provider) *Registry {
	r := &Registry{providers: providers, missing: map[schema.GroupKind]string{}, controllers: map[string]DataPlane{}}
	for _, p := range providers {
		if on, ok := p.(OnDataPlane); ok {
			for _, c := range on.ControllerNames() {
				r.controllers[c] = on.DataPlane()
			}
		}
	}
	return r
}

// Discovering is a provider that writes, beside its own kind, objects of a kind the cluster may
// not serve (Traefik's Middleware): Discover asks the cluster once, as the registry is built, as
// it does for the providers' own kinds.
type Discovering interface {
	Discover(mapper meta.RESTMapper)
}

// Discover marks unavailable every kind the cluster does not serve (asked of its RESTMapper), and
// tells the providers that write other kinds (Discovering).
func (r *Registry) Discover(mapper meta.RESTMapper) {
	for _, p := range r.providers {
		if d, ok := p.(Discovering); ok {
			d.Discover(mapper)
		}
		gk := p.GroupKind()
		if _, err := mapper.RESTMapping(gk); meta.IsNoMatchError(err) {
			r.missing[gk] = fmt.Sprintf("its CustomResourceDefinition is not installed in this cluster (no %s in API group %s): install it, then restart the Floodgate manager", gk.Kind, gk.Group)
		}
	}
}

// Missing are the kinds the cluster does not serve.
func (r *Registry) Missing() []schema.GroupKind {
	var out []schema.GroupKind
	for gk := range r.missing {
		out = append(out, gk)
	}
	return out
}

// For is the portable provider of a reference's kind (Resolve picks an object's own); an error wrapping ErrKindNotInstalled when the
// kind's CRD is missing, or a plain error when no provider knows the kind.
func (r *Registry) For(ref Ref) (Provider, error) {
	gk := ref.GroupKind()
	if why, ok := r.missing[gk]; ok {
		return nil, notInstalled(fmt.Sprintf("%s: %s", ref, why))
	}
	for _, p := range r.providers {
		if p.GroupKind() == gk {
			return p, nil
		}
	}
	return nil, notInstalled(fmt.Sprintf("%s: Floodgate has no provider for kind %s", ref, gk))
}

// notInstalled is an ErrKindNotInstalled that says which kind and why, in its own words.
type notInstalled string

func (e notInstalled) Error() string { return string(e) }
func (e notInstalled) Unwrap() error { return ErrKindNotInstalled }

// Available are the providers whose kind the cluster serves, of a role: every data plane's.
func (r *Registry) Available(role Role) []Provider {
	var out []Provider
	for _, p := range r.providers {
		if _, gone := r.missing[p.GroupKind()]; !gone && p.Role() == role {
			out = append(out, p)
		}
	}
	return out
}

// Kinds are the portable providers of the kinds the cluster serves, of a role: one per kind,
// for what is done once per kind (watches, field indexes).
func (r *Registry) Kinds(role Role) []Provider {
	var out []Provider
	seen := map[schema.GroupKind]bool{}
	for _, p := range r.Available(role) {
		if !seen[p.GroupKind()] {
			seen[p.GroupKind()] = true
			out = append(out, p)
		}
	}
	return out
}

// ShedKinds are those of providers whose objects carry traffic by host and path (Routed).
func ShedKinds(providers []Provider) []shed.Kind {
	var out []shed.Kind
	for _, p := range providers {
		if routed, ok := p.(Routed); ok {
			out = append(out, routed)
		}
	}
	return out
}
