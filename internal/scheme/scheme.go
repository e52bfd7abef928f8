// Package scheme knows the Kubernetes types Floodgate reads and writes, and the TrafficPolicy
// API: the one scheme the manager, the shed server, the plugin and drills share.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider/registered"
)

// New returns a scheme with the Kubernetes types, the TrafficPolicy API, and the Go types each
// provider brings of its own (Gateway API v1's, from the HTTPRoute provider).
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := registered.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}
