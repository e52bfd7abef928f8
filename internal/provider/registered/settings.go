package registered

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/shed"
)

// The ConfigMap the manager's settings come from (config/manager/config.yaml, the chart's
// config.yaml): the manager reads its keys through its environment, a preview reads the
// ConfigMap itself, so both build their providers from the same settings.
const (
	ConfigMapName = "floodgate-config"
	// KeyRedirectHosts holds the hosts a shed answer may redirect to (comma-separated).
	KeyRedirectHosts = "shed-redirect-hosts"
	// KeyRegexHeaderControllers holds the Gateway API controllerNames known to match
	// RegularExpression header matches (comma-separated; absent: Envoy Gateway's).
	KeyRegexHeaderControllers = "regex-header-controllers"
	// RegexHeaderControllersEnv names the environment variable the manager reads
	// --regex-header-controllers from by default (config/ sets it from the ConfigMap).
	RegexHeaderControllersEnv = "FLOODGATE_REGEX_HEADER_CONTROLLERS"
	// KeyDataPlaneControllers maps more controller names onto data planes
	// ("controller=data-plane", comma-separated).
	KeyDataPlaneControllers = "data-plane-controllers"
	// DataPlaneControllersEnv names the environment variable the manager reads
	// --data-plane-controllers from by default (config/ sets it from the ConfigMap).
	DataPlaneControllersEnv = "FLOODGATE_DATA_PLANE_CONTROLLERS"
)

// SettingsOf are the settings a floodgate-config ConfigMap holds.
func SettingsOf(cm *corev1.ConfigMap) Settings {
	s := Settings{RedirectHosts: shed.ParseRedirectHosts(cm.Data[KeyRedirectHosts])}
	if v, ok := cm.Data[KeyRegexHeaderControllers]; ok {
		s.RegexHeaderControllers = ParseList(v)
	}
	// A ConfigMap the manager could not start with is not one it runs with: the defaults stand.
	s.DataPlaneControllers, _ = ParseDataPlaneControllers(cm.Data[KeyDataPlaneControllers])
	return s
}

// ParseDataPlaneControllers reads "controller=data-plane" pairs, comma-separated (the manager's
// --data-plane-controllers): "k8s.io/ingress-nginx=traefik" says Traefik's NGINX provider serves
// the classes of ingress-nginx's controller name.
func ParseDataPlaneControllers(v string) (map[string]provider.DataPlane, error) {
	var out map[string]provider.DataPlane
	for _, pair := range ParseList(v) {
		if out == nil {
			out = map[string]provider.DataPlane{}
		}
		controller, dataPlane, ok := strings.Cut(pair, "=")
		controller, dataPlane = strings.TrimSpace(controller), strings.TrimSpace(dataPlane)
		if !ok || controller == "" || dataPlane == "" {
			return nil, fmt.Errorf("%q is not controller=data-plane (for example k8s.io/ingress-nginx=traefik)", pair)
		}
		out[controller] = provider.DataPlane(dataPlane)
	}
	return out, nil
}

// FormatDataPlaneControllers writes pairs as ParseDataPlaneControllers reads them, sorted.
func FormatDataPlaneControllers(m map[string]provider.DataPlane) string {
	pairs := make([]string, 0, len(m))
	for c, d := range m {
		pairs = append(pairs, c+"="+string(d))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

// ParseList splits a comma-separated list, dropping blanks (an empty string: an empty list).
func ParseList(v string) []string {
	out := []string{}
	for _, c := range strings.Split(v, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// ReadSettings reads the manager's settings from the cluster: the ConfigMap floodgate-config in
// the manager's namespace. An error says why they could not be read (not found, forbidden), and
// a caller that goes on with the defaults must say so.
func ReadSettings(ctx context.Context, c client.Reader, namespace string) (Settings, error) {
	var cm corev1.ConfigMap
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ConfigMapName}, &cm)
	switch {
	case apierrors.IsNotFound(err):
		return Settings{}, fmt.Errorf("ConfigMap %s/%s not found", namespace, ConfigMapName)
	case err != nil:
		return Settings{}, fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, ConfigMapName, err)
	}
	return SettingsOf(&cm), nil
}

// FromCluster is the registry a preview uses, built as the manager builds its own
// (manager.New: Providers with its settings), from the manager's settings read from the cluster;
// when they cannot be read, from the defaults, and the error says why.
func FromCluster(ctx context.Context, c client.Client, namespace string) (*provider.Registry, error) {
	s, err := ReadSettings(ctx, c, namespace)
	// A preview reads the classes a cluster-wide manager reads, where its user may.
	s.ReadClasses = true
	return Providers(c, s), err
}

// ConfigMap is the floodgate-config ConfigMap holding s, in namespace, as an install writes it
// (drills and tests create it beside a manager started with s).
func ConfigMap(namespace string, s Settings) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: namespace},
		Data: map[string]string{KeyRedirectHosts: strings.Join(s.RedirectHosts, ",")}}
	if s.RegexHeaderControllers != nil {
		cm.Data[KeyRegexHeaderControllers] = strings.Join(s.RegexHeaderControllers, ",")
	}
	if len(s.DataPlaneControllers) > 0 {
		cm.Data[KeyDataPlaneControllers] = FormatDataPlaneControllers(s.DataPlaneControllers)
	}
	return cm
}
