package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/warp"
)

// TestANamespacedInstallRunsAWholeCycleOnItsOwnRolesAndUsesEveryVerbItIsGranted installs
// config/namespaced for real, runs the manager as its ServiceAccount (impersonated), bound to
// nothing but what the overlay grants, through ShedAll, a gated ramp, the release and a delete,
// and checks that no request was forbidden, that every verb granted was used (but the few whose
// use needs what envtest does not run, named below), and that a namespace it does not watch is
// left alone.
func TestANamespacedInstallRunsAWholeCycleOnItsOwnRolesAndUsesEveryVerbItIsGranted(t *testing.T) {
	ctx := context.Background()
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	for _, ns := range []string{"edge", "elsewhere"} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
	must(t, "apply", "--server-side", "--force-conflicts", "-k", filepath.Join(root, "config", "namespaced"))
	granted := grantedByTheOverlay(t, root)

	_ = env.StopManager()
	defer func() {
		if err := env.StartManager(); err != nil {
			t.Fatal(err)
		}
	}()
	used := &requests{}
	cfg := rest.CopyConfig(env.ControlPlane.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:floodgate-system:floodgate-manager",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:floodgate-system", "system:authenticated"}}
	cfg.WrapTransport = used.wrap
	mctx, stop := context.WithCancel(ctx)
	clk := warp.New(time.Now()) // its own: the plugin tests read hold times against the real clock
	mgr, err := manager.New(mctx, cfg, manager.Options{Clock: clk, ClockAdvanced: clk.Subscribe(), Shed: manager.DefaultShed,
		SkipNameValidation: true, WatchNamespaces: []string{"edge"}, LeaderElection: true, LeaderElectionNamespace: "floodgate-system",
		LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() { stop(); <-done }()

	// The cycle, in the watched namespace.
	fixtureIn(t, "edge", func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action = v1alpha1.ActionShedAll
		p.Spec.Ramp.Steps[0].Gates = []v1alpha1.Gate{{Name: "fleet", WorkloadReady: &v1alpha1.WorkloadReadyGate{Name: "api", MinAvailablePercent: 1}}}
	})
	setAvailable(t, "edge")
	waitPhase(t, "edge", v1alpha1.PhaseShedding)
	// The shed pods move: their addresses are mirrored into the policy's namespace.
	moveShedPods(t, "10.96.0.12")
	eventually(t, func() bool {
		var slice discoveryv1.EndpointSlice
		err := k8s.Get(ctx, client.ObjectKey{Namespace: "edge", Name: "floodgate-shed-api"}, &slice)
		return err == nil && slices.ContainsFunc(slice.Endpoints, func(e discoveryv1.Endpoint) bool { return slices.Contains(e.Addresses, "10.96.0.12") })
	})
	setAction(t, "edge", v1alpha1.ActionRamp)
	waitPhase(t, "edge", v1alpha1.PhaseRamping)
	clk.Advance(6 * time.Minute)
	eventually(t, func() bool { return getPolicy(t, "edge").Status.Progress == "2/2" })
	setAction(t, "edge", v1alpha1.ActionNormal)
	waitPhase(t, "edge", v1alpha1.PhaseReleasing)
	clk.Advance(5 * time.Minute) // the HPA's stabilization window, the least release time
	waitPhase(t, "edge", v1alpha1.PhaseNormal)
	if err := k8s.Delete(ctx, getPolicy(t, "edge")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		return client.IgnoreNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: "edge", Name: "api"}, &v1alpha1.TrafficPolicy{})) == nil &&
			k8s.Get(ctx, client.ObjectKey{Namespace: "edge", Name: "api"}, &v1alpha1.TrafficPolicy{}) != nil
	})

	// A namespace it does not watch is left alone, whatever its policies say.
	fixtureIn(t, "elsewhere", func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll })
	time.Sleep(time.Second)
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "elsewhere", Name: "api-floodgate-api"}, &networkingv1.Ingress{}); err == nil {
		t.Fatal("the namespaced manager acted in a namespace it does not watch")
	}
	p := &v1alpha1.TrafficPolicy{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "elsewhere", Name: "api"}, p); err != nil {
		t.Fatal(err)
	}
	_ = k8s.Delete(ctx, p) // the env's own manager (watching every namespace) lets it go once restarted

	if forbidden := used.forbidden(); len(forbidden) > 0 {
		t.Fatalf("requests the granted roles did not allow:\n  %s", strings.Join(forbidden, "\n  "))
	}
	// Verbs whose use needs what this cycle does not do, each with why it is granted (the RBAC
	// markers in controllers/ and internal/provider, and config/rbac, say the same).
	unusedHere := map[string]string{
		"update traffic.floodgate.dev/trafficpolicies/finalizers": "needed where the OwnerReferencesPermissionEnforcement admission plugin is on",
		"get apps/statefulsets/scale":                             "an HPA that scales a StatefulSet",
		"get apps/replicasets/scale":                              "an HPA that scales a ReplicaSet",
		"patch events.k8s.io/events":                              "an Event repeated within its series",
		"patch core/events":                                       "a leader election Event repeated",
		"patch core/services":                                     "a shed Service someone else changed",
		"get traffic.floodgate.dev/trafficpolicies":               "a pass whose cached policy is older than the manager's last write of it reads it live",
		"get discovery.k8s.io/endpointslices":                     "a shed EndpointSlice whose labels someone removed (outside the cache: read live)",
		"get keda.sh/scaledobjects":                               "a cluster with KEDA installed (test/keda holds ScaledObjects)",
		"patch keda.sh/scaledobjects":                             "a cluster with KEDA installed",
		"watch keda.sh/scaledobjects":                             "a cluster with KEDA installed",
		"patch gateway.networking.k8s.io/httproutes":              "a cluster with Gateway API installed (test/gatewayapi holds HTTPRoutes)",
		"watch gateway.networking.k8s.io/httproutes":              "a cluster with Gateway API installed",
		"watch gateway.networking.k8s.io/gateways":                "a cluster with Gateway API installed",
		"get traefik.io/middlewares":                              "a per-client limit on an HTTPRoute of Traefik's Gateways, with Traefik's CRDs installed (test/traffic holds them)",
		"create traefik.io/middlewares":                           "a per-client limit on an HTTPRoute of Traefik's Gateways",
		"patch traefik.io/middlewares":                            "a per-client limit on an HTTPRoute of Traefik's Gateways whose rate changed",
		"delete traefik.io/middlewares":                           "a per-client limit on an HTTPRoute of Traefik's Gateways no step needs any more",
		"get gateway.envoyproxy.io/httproutefilters":              "an HTTPRoute of Envoy Gateway's Gateways, with Envoy Gateway's CRDs installed (test/envoygateway holds them)",
		"create gateway.envoyproxy.io/httproutefilters":           "an HTTPRoute of Envoy Gateway's Gateways: its ShedAll's direct response, armed",
		"patch gateway.envoyproxy.io/httproutefilters":            "an HTTPRoute of Envoy Gateway's Gateways whose policy's shed answer changed",
		"delete gateway.envoyproxy.io/httproutefilters":           "an HTTPRoute of Envoy Gateway's Gateways its policy no longer names",
		"watch gateway.envoyproxy.io/backendtrafficpolicies":      "a cluster with Envoy Gateway's CRDs: a BackendTrafficPolicy of yours on a route, or the verdict on Floodgate's, wakes its policies",
		"get gateway.envoyproxy.io/backendtrafficpolicies":        "a per-client limit on an HTTPRoute of Envoy Gateway's Gateways (its verdict)",
		"create gateway.envoyproxy.io/backendtrafficpolicies":     "a per-client limit on an HTTPRoute of Envoy Gateway's Gateways",
		"patch gateway.envoyproxy.io/backendtrafficpolicies":      "a per-client limit on an HTTPRoute of Envoy Gateway's Gateways whose rate changed",
		"delete gateway.envoyproxy.io/backendtrafficpolicies":     "a per-client limit on an HTTPRoute of Envoy Gateway's Gateways no step needs any more",
		"watch networking.k8s.io/ingressclasses":                  "a cluster-wide install (cluster-scoped: a namespaced one reads none)",
		"watch gateway.networking.k8s.io/gatewayclasses":          "a cluster-wide install with Gateway API (cluster-scoped: a namespaced one reads none)",
	}
	var unused []string
	for _, g := range granted {
		// list: what an informer falls back to on an API server without streaming lists.
		if !used.has(g) && unusedHere[g] == "" && !strings.HasPrefix(g, "list ") {
			unused = append(unused, g)
		}
	}
	if len(unused) > 0 {
		t.Fatalf("granted but never used in a whole cycle (least privilege: drop them):\n  %s\nused: %s", strings.Join(unused, "\n  "), used.summary())
	}
}

// moveShedPods gives the stand-in shed pods another address, as a rollout of the shed Deployment would.
func moveShedPods(t *testing.T, address string) {
	t.Helper()
	var slice discoveryv1.EndpointSlice
	key := client.ObjectKey{Namespace: manager.DefaultShed.Namespace, Name: manager.DefaultShed.ServiceName + "-pods"}
	if err := k8s.Get(context.Background(), key, &slice); err != nil {
		t.Fatal(err)
	}
	before := slice.DeepCopy()
	slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{address}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	if err := k8s.Patch(context.Background(), &slice, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var now discoveryv1.EndpointSlice
		if err := k8s.Get(context.Background(), key, &now); err == nil {
			patch := client.MergeFrom(now.DeepCopy())
			now.Endpoints = before.Endpoints
			_ = k8s.Patch(context.Background(), &now, patch)
		}
	})
}

// setShedPodsReady marks the stand-in shed pods ready or not, as the EndpointSlice controller would.
func setShedPodsReady(t *testing.T, ready bool) {
	t.Helper()
	var slice discoveryv1.EndpointSlice
	key := client.ObjectKey{Namespace: manager.DefaultShed.Namespace, Name: manager.DefaultShed.ServiceName + "-pods"}
	if err := k8s.Get(context.Background(), key, &slice); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(slice.DeepCopy())
	for i := range slice.Endpoints {
		slice.Endpoints[i].Conditions.Ready = ptr.To(ready)
	}
	if err := k8s.Patch(context.Background(), &slice, patch); err != nil {
		t.Fatal(err)
	}
}

// grantedByTheOverlay lists "verb group/resource" for every rule the overlay grants the manager.
func grantedByTheOverlay(t *testing.T, root string) []string {
	t.Helper()
	out := must(t, "kustomize", filepath.Join(root, "config", "namespaced"))
	roles := map[string][]rbacv1.PolicyRule{}
	var bound []string
	for _, doc := range strings.Split(out, "\n---\n") {
		var meta struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
			Rules    []rbacv1.PolicyRule
			RoleRef  rbacv1.RoleRef `json:"roleRef"`
			Subjects []rbacv1.Subject
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "ClusterRole", "Role":
			roles[meta.Kind+"/"+meta.Metadata.Name] = meta.Rules
		case "RoleBinding", "ClusterRoleBinding":
			if slices.ContainsFunc(meta.Subjects, func(s rbacv1.Subject) bool { return s.Name == "floodgate-manager" }) {
				bound = append(bound, meta.RoleRef.Kind+"/"+meta.RoleRef.Name)
			}
		}
	}
	var granted []string
	for _, r := range bound {
		for _, rule := range roles[r] {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					for _, v := range rule.Verbs {
						key := fmt.Sprintf("%s %s/%s", v, g, res)
						if g == "" {
							key = fmt.Sprintf("%s core/%s", v, res)
						}
						if !slices.Contains(granted, key) {
							granted = append(granted, key)
						}
					}
				}
			}
		}
	}
	if len(granted) < 20 {
		t.Fatalf("the overlay grants the manager only %v (bound: %v)", granted, bound)
	}
	return granted
}

// requests records the verb, resource and answer of every request a manager makes.
type requests struct {
	mu   sync.Mutex
	seen map[string]bool
	deny []string
}

func (r *requests) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTrip(func(req *http.Request) (*http.Response, error) {
		res, err := next.RoundTrip(req)
		key := verbOf(req)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.seen == nil {
			r.seen = map[string]bool{}
		}
		if err == nil && res.StatusCode == http.StatusForbidden {
			r.deny = append(r.deny, key+" "+req.URL.Path)
		} else if key != "" {
			r.seen[key] = true
		}
		return res, err
	})
}

func (r *requests) has(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[key]
}

func (r *requests) forbidden() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deny)
}

func (r *requests) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []string
	for k := range r.seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// verbOf names a request as RBAC does: "verb group/resource[/subresource]".
func verbOf(req *http.Request) string {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		group, parts = "core", parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return ""
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return ""
	}
	resource, named := parts[0], len(parts) >= 2
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	verb := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[req.Method]
	if req.Method == http.MethodGet {
		switch {
		case req.URL.Query().Get("watch") == "true":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	}
	return verb + " " + group + "/" + resource
}
