package provider

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Registry holds a provider for every kind Floodgate edits. A kind whose CustomResourceDefinition
// is not installed (KEDA, Gateway API) is known but unavailable: the manager does not watch it
// (a watch on a missing CRD keeps a manager from starting), and a policy that names it is told
// which CRD is missing.
type Registry struct {
	providers []Provider
	missing   map[schema.GroupKind]string
}

// NewRegistry registers providers: a new kind is one package and one line here.
func NewRegistry(providers ...Provider) *Registry {
	return &Registry{providers: providers, missing: map[schema.GroupKind]string{}}
}

// Discover marks unavailable every kind the cluster does not serve (asked of its RESTMapper).
func (r *Registry) Discover(mapper meta.RESTMapper) {
	for _, p := range r.providers {
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

// For is the provider of a reference's kind; an error wrapping ErrKindNotInstalled when the
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

// Available are the providers whose kind the cluster serves, of a role.
func (r *Registry) Available(role Role) []Provider {
	var out []Provider
	for _, p := range r.providers {
		if _, gone := r.missing[p.GroupKind()]; !gone && p.Role() == role {
			out = append(out, p)
		}
	}
	return out
}
