// Package registered lists every provider: each kind of object Floodgate edits. A new kind is
// one package under internal/provider and one line here.
package registered

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/envoygateway"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
	"floodgate.dev/floodgate/internal/provider/hpa"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/provider/keda"
	"floodgate.dev/floodgate/internal/provider/traefik"
	"floodgate.dev/floodgate/internal/shed"
)

// Settings are the cluster's settings some providers read (the manager's flags).
type Settings struct {
	// RegexHeaderControllers are the Gateway API controllerNames known to match
	// RegularExpression header matches with RE2/PCRE-compatible syntax (nil: Envoy Gateway's).
	RegexHeaderControllers []string
	// RedirectHosts are the hosts a shed answer may redirect to.
	RedirectHosts shed.RedirectHosts
	// DataPlaneControllers map more controller names onto data planes (the manager's
	// --data-plane-controllers), over KnownControllers.
	DataPlaneControllers map[string]provider.DataPlane
	// ReadClasses reads the cluster-scoped IngressClasses and GatewayClasses for a target's data
	// plane (a cluster-wide install; a namespaced manager cannot).
	ReadClasses bool
}

// KnownControllers are the controller names of the data planes Floodgate knows by default,
// beyond those of its providers' own data planes: an IngressClass's spec.controller or a
// GatewayClass's spec.controllerName, and the data plane it is. Traefik's own Ingress provider
// (traefik.io/ingress-controller) is not Traefik's data plane for Ingresses: it reads none of
// ingress-nginx's annotations, so it is named by its controller name and warned about; Traefik's
// NGINX provider serves k8s.io/ingress-nginx classes, mapped onto traefik by the manager's flag.
// (Every data plane Floodgate knows has a provider of its own today: none is named here.)
func KnownControllers() map[string]provider.DataPlane {
	return map[string]provider.DataPlane{}
}

// Providers is the registry of every kind, for a client; the kinds the cluster does not serve
// (asked of the client's RESTMapper) are marked unavailable.
func Providers(c client.Client, settings ...Settings) *provider.Registry {
	r := NewRegistry(c, settings...)
	r.Discover(c.RESTMapper())
	return r
}

// NewRegistry is the registry of every kind, none marked unavailable.
func NewRegistry(c client.Client, settings ...Settings) *provider.Registry {
	var s Settings
	if len(settings) > 0 {
		s = settings[0]
	}
	r := provider.NewRegistry(all(c, s)...)
	r.MapControllers(KnownControllers())
	r.MapControllers(s.DataPlaneControllers)
	return r
}

// all are the providers, built for a client with the settings. The first provider of a kind is
// its portable one (provider.Registry).
func all(c client.Client, s Settings) []provider.Provider {
	return []provider.Provider{
		&ingressnginx.Provider{Client: c, ReadClasses: s.ReadClasses},
		&traefik.IngressProvider{Provider: ingressnginx.Provider{Client: c, ReadClasses: s.ReadClasses}},
		&gatewayapi.Provider{Client: c, RegexControllers: s.RegexHeaderControllers, RedirectHosts: s.RedirectHosts, ReadClasses: s.ReadClasses},
		&traefik.RouteProvider{Provider: gatewayapi.Provider{Client: c, RegexControllers: s.RegexHeaderControllers, RedirectHosts: s.RedirectHosts,
			ReadClasses: s.ReadClasses, PerClient: &traefik.Middlewares{}}},
		envoygateway.New(gatewayapi.Provider{Client: c, RegexControllers: s.RegexHeaderControllers, RedirectHosts: s.RedirectHosts, ReadClasses: s.ReadClasses}),
		&hpa.Provider{Client: c},
		&keda.Provider{Client: c},
	}
}

// schemed is a provider whose kinds are Go types of a module's own, not client-go's: it installs
// them into a scheme.
type schemed interface {
	AddToScheme(*runtime.Scheme) error
}

// AddToScheme installs into s the Go types of every provider that has its own (Gateway API's
// for the HTTPRoute provider); internal/scheme calls it, so a new provider's types come with its
// package.
func AddToScheme(s *runtime.Scheme) error {
	for _, p := range all(nil, Settings{}) {
		if t, ok := p.(schemed); ok {
			if err := t.AddToScheme(s); err != nil {
				return fmt.Errorf("installing the Go types of %s: %w", p.GroupKind(), err)
			}
		}
	}
	return nil
}

// ShedKinds are the target kinds whose objects carry traffic by host and path, as their
// providers tell it: what the shed server follows (shed.SyncOptions.Kinds).
func ShedKinds() []shed.Kind {
	return provider.ShedKinds(NewRegistry(nil).Kinds(provider.Target))
}

// ScopedKinds are the kinds cached only in the namespaces that hold a policy: every target and
// autoscaler kind (a policy names objects of its own namespace only).
func ScopedKinds() []client.Object {
	r := NewRegistry(nil)
	var out []client.Object
	for _, role := range []provider.Role{provider.Target, provider.Autoscaler} {
		for _, p := range r.Kinds(role) {
			out = append(out, p.Object())
		}
	}
	return out
}

// DefaultRegexHeaderControllers are the Gateway API controllerNames known to match
// RegularExpression header matches with RE2/PCRE-compatible syntax, by default (the manager's
// --regex-header-controllers).
func DefaultRegexHeaderControllers() []string {
	return slices.Clone(gatewayapi.DefaultRegexControllers)
}

// PlayGateways plays, where no gateway runs (drills), the data planes' part in a verdict: every
// HTTPRoute is reported on at its current generation by the gateway of controllerName ("":
// Envoy Gateway's), every interval until ctx ends.
func PlayGateways(ctx context.Context, c client.Client, controllerName string, interval time.Duration) {
	if controllerName == "" {
		controllerName = gatewayapi.EnvoyGatewayController
	}
	(&gatewayapi.Gateway{Client: c, ControllerName: controllerName}).Run(ctx, interval)
}
