// Package registered lists every provider: each kind of object Floodgate edits. A new kind is
// one package under internal/provider and one line here.
package registered

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/hpa"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/provider/keda"
)

// Providers is the registry of every kind, for a client; the kinds the cluster does not serve
// (asked of the client's RESTMapper) are marked unavailable.
func Providers(c client.Client) *provider.Registry {
	r := provider.NewRegistry(
		&ingressnginx.Provider{Client: c},
		&hpa.Provider{Client: c},
		&keda.Provider{Client: c},
	)
	r.Discover(c.RESTMapper())
	return r
}
