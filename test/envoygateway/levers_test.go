package envoygateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider/envoygateway"
	"floodgate.dev/floodgate/test/fixtures"
)

const (
	toAPI  = "api"
	toV2   = "api-v2 +X-Team" // the user's backend, with the user's own filter
	toShed = "floodgate-shed-api"
	direct = "direct response 503"
)

func region(r string) *string { return &r }

// paths × region header values: allowed (AU), another (US), empty, absent.
var (
	au, us, empty = region("AU"), region("US"), region("")
	requests      = fixtures.PathsByRegion([]string{"/", "/v2/users"}, au, us, empty, nil)
)

// canvaRunbook is the Canva runbook's policy on the route: shed answered 503 with Retry-After
// 120, then AU at 50 requests a second per client, APAC at 500, half, full.
func canvaRunbook(p *v1alpha1.TrafficPolicy) {
	p.Spec.RegionHeader = "CF-IPCountry"
	p.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](503), RetryAfterSeconds: ptr.To[int32](120)}
	p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{
		{AllowRegions: []string{"AU"}, PerClientRequestsPerSecond: ptr.To[int32](50), Hold: metav1.Duration{Duration: 5 * time.Minute}},
		{AllowRegions: []string{"AU", "NZ", "SG"}, PerClientRequestsPerSecond: ptr.To[int32](500), Hold: metav1.Duration{Duration: 10 * time.Minute}},
		{AdmitPercent: ptr.To[int32](50), Hold: metav1.Duration{Duration: 10 * time.Minute}},
	}}
}

// TestEachLeverThroughEnvoyGatewaysTranslatorAndAnExactRestore: the Canva runbook on a route of
// Envoy Gateway's, each lever written through the real API server and translated by egctl: the
// shed is Envoy's own direct response (no cluster for the shed Service), each limiting step a
// local rate limit keyed by the client address at the step's rate, and the restore leaves the
// route as it was, with the policy's HTTPRouteFilter and BackendTrafficPolicy gone.
func TestEachLeverThroughEnvoyGatewaysTranslatorAndAnExactRestore(t *testing.T) {
	ns := fixture(t, "canva")
	before := getRoute(t, ns)
	fixtures.Create(t, k8s, policy(ns, canvaRunbook))

	t.Log("armed before the incident: the direct response stands, unreferenced, and the API server accepted every lever")
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionArmed), "True") && envoyObject(t, ns, "HTTPRouteFilter") != nil
	})
	if tg := p.Status.Targets; len(tg) != 1 || tg[0].Capabilities == nil || tg[0].Capabilities.Provider != envoygateway.ProviderName ||
		tg[0].Capabilities.ShedAnsweredBy != v1alpha1.ShedAnsweredByProxy || tg[0].Companion != envoygateway.CompanionName("api", "api") {
		t.Fatalf("status targets: %+v", p.Status.Targets)
	}
	if r := getRoute(t, ns); !equality.Semantic.DeepEqual(r.Spec, before.Spec) {
		t.Fatalf("at rest the route is untouched: %+v", r.Spec.Rules)
	}
	atRest := translate(t, ns)
	for _, req := range requests {
		if got, w := atRest.Reach(t, req), map[bool]string{true: toV2, false: toAPI}[strings.HasPrefix(req.Path, "/v2")]; got != w {
			t.Errorf("at rest, %s: %s, want %s", req, got, w)
		}
	}

	t.Log("ShedAll: Envoy answers every request itself")
	fixtures.KubectlFloodgate(t, kubeconfig, clk, "shed", "api", "-n", ns, "--reason", "1.5M req/s herd", "--wait")
	tr := translateWhen(t, ns, func(r *gatewayv1.HTTPRoute) bool { return len(r.Spec.Rules[0].BackendRefs) == 0 })
	for _, req := range requests {
		if got := tr.Reach(t, req); got != direct {
			t.Errorf("ShedAll, %s: %s, want %s", req, got, direct)
			continue
		}
		r := tr.Route(t, req)
		if r.ResponseHeader("Retry-After") != "120" || !strings.Contains(r.DirectBody(), `"error":"traffic_shed"`) || r.ResponseHeader("Content-Type") != "application/json" ||
			r.ResponseHeader("X-Floodgate-Probe-Policy") != ns+"/api" {
			t.Errorf("ShedAll, %s: the answer is not the policy's: %+v", req, r)
		}
	}
	for cluster, backends := range tr.Backends {
		for _, b := range backends {
			if b.Service == toShed {
				t.Errorf("ShedAll: Envoy has a cluster %s for the shed Service: the herd must not reach a pod", cluster)
			}
		}
	}

	t.Log("AU at 50 requests a second per client")
	fixtures.KubectlFloodgate(t, kubeconfig, clk, "ramp", "api", "-n", ns, "--reason", "AU first", "--wait")
	tr = translateWhen(t, ns, limitedAt(ns, 50))
	assertLimited(t, tr, 50, want{toAPI, toShed, toShed, toAPI, toV2, toShed, toShed, toV2})
	if got, want := js(envoyObject(t, ns, envoygateway.PolicyGVK.Kind).Object["spec"]), js(envoygateway.RateLimitSpec("api", 50)); got != want {
		t.Errorf("the API server stores another BackendTrafficPolicy than Floodgate writes (a default it does not write makes a write every pass):\nstored %s\nwrote  %s", got, want)
	}

	t.Log("APAC at 500")
	clk.Advance(5 * time.Minute)
	tr = translateWhen(t, ns, limitedAt(ns, 500))
	assertLimited(t, tr, 500, want{toAPI, toShed, toShed, toAPI, toV2, toShed, toShed, toV2})

	t.Log("half of everyone, by weight; no limit")
	clk.Advance(10 * time.Minute)
	tr = translateWhen(t, ns, func(r *gatewayv1.HTTPRoute) bool {
		return len(r.Spec.Rules[0].BackendRefs) == 2 && envoyObject(t, ns, envoygateway.PolicyGVK.Kind) == nil
	})
	for _, req := range requests {
		w := "api:1 floodgate-shed-api:1"
		if strings.HasPrefix(req.Path, "/v2") {
			w = "api-v2:1 floodgate-shed-api:1 +X-Team"
		}
		if got := tr.Reach(t, req); got != w {
			t.Errorf("half, %s: %s, want %s", req, got, w)
		}
	}

	t.Log("full traffic: the route is as it was")
	clk.Advance(10 * time.Minute)
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseCompleted })
	after := fixtures.Eventually(t, func() (*gatewayv1.HTTPRoute, bool) {
		r := getRoute(t, ns)
		return r, equality.Semantic.DeepEqual(r.Spec, before.Spec) && r.Annotations == nil
	})
	if !equality.Semantic.DeepEqual(after.Labels, before.Labels) {
		t.Errorf("labels %v, want %v", after.Labels, before.Labels)
	}
	if envoyObject(t, ns, envoygateway.PolicyGVK.Kind) != nil {
		t.Error("the BackendTrafficPolicy outlived the last limiting step")
	}
	tr = translate(t, ns)
	for _, req := range requests {
		if got, w := tr.Reach(t, req), atRest.Reach(t, req); got != w {
			t.Errorf("restored, %s: %s, want %s as at rest", req, got, w)
		}
	}

	t.Log("the policy goes: so does its direct response, once Envoy Gateway has reported on the route without it")
	deletePolicy(t, ns)
	fixtures.Eventually(t, func() (string, bool) {
		return "the HTTPRouteFilter stands", envoyObject(t, ns, envoygateway.FilterGVK.Kind) == nil
	})
	if r := getRoute(t, ns); !equality.Semantic.DeepEqual(r.Spec, before.Spec) || r.Annotations != nil {
		t.Errorf("after the policy went: %+v %v", r.Spec.Rules, r.Annotations)
	}
}

// want is where each of requests goes, in order.
type want []string

// limitedAt reports whether the route's policy limits at rps (its BackendTrafficPolicy says so)
// and the route has the allowlist's rule.
func limitedAt(ns string, rps int64) func(*gatewayv1.HTTPRoute) bool {
	return func(r *gatewayv1.HTTPRoute) bool {
		btp := &unstructured.Unstructured{}
		btp.SetGroupVersionKind(envoygateway.PolicyGVK)
		if k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: envoygateway.CompanionName("api", "api")}, btp) != nil {
			return false
		}
		rules, _, _ := unstructured.NestedSlice(btp.Object, "spec", "rateLimit", "local", "rules")
		if len(rules) != 2 {
			return false
		}
		got, _, _ := unstructured.NestedInt64(rules[0].(map[string]any), "limit", "requests")
		return got == rps && len(r.Spec.Rules) == 3
	}
}

// assertLimited checks where each request lands, that every route of the HTTPRoute limits each
// client address at rps, and that Envoy Gateway accepted the BackendTrafficPolicy.
func assertLimited(t *testing.T, tr fixtures.Translation, rps int, w want) {
	t.Helper()
	if ok, why := tr.Policies[envoygateway.CompanionName("api", "api")].Accepted(); !ok {
		t.Errorf("Envoy Gateway did not accept the BackendTrafficPolicy: %s", why)
	}
	for i, req := range requests {
		got := tr.Reach(t, req)
		if got != w[i] {
			t.Errorf("%s: %s, want %s", req, got, w[i])
		}
		// The limit targets the route: Floodgate's own rule, to the shed Service, is limited too.
		limit, wantLimit := describeLimit(t, tr.Route(t, req)), fmt.Sprintf("%d per 1s per client address (IPv4, IPv6)", rps)
		if limit != wantLimit {
			t.Errorf("%s: limited %s, want %s", req, limit, wantLimit)
		}
	}
}

// describeLimit says what Envoy's local rate limit on a route does: "N per 1s per client
// address (IPv4, IPv6)" when each address family has a descriptor keyed by the client's own
// address (an entry without a value: one bucket per distinct address), "none" without one.
func describeLimit(t *testing.T, r *fixtures.EnvoyRoute) string {
	t.Helper()
	raw, ok := r.TypedPerFilterConfig["envoy.filters.http.local_ratelimit"]
	if !ok {
		return "none"
	}
	var cfg struct {
		Descriptors []struct {
			Entries []struct {
				Key   string  `json:"key"`
				Value *string `json:"value"`
			} `json:"entries"`
			TokenBucket struct {
				MaxTokens     int    `json:"maxTokens"`
				TokensPerFill int    `json:"tokensPerFill"`
				FillInterval  string `json:"fillInterval"`
			} `json:"tokenBucket"`
		} `json:"descriptors"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var families, rates []string
	for _, d := range cfg.Descriptors {
		perAddress, family := false, ""
		for _, e := range d.Entries {
			switch {
			case strings.HasSuffix(e.Key, "-masked-remote-address") && e.Value != nil:
				family = map[string]string{"0.0.0.0/0": "IPv4", "::/0": "IPv6"}[*e.Value]
			case strings.HasSuffix(e.Key, "-remote-address") && e.Value == nil:
				perAddress = true
			}
		}
		b := d.TokenBucket
		if !perAddress || family == "" || b.MaxTokens != b.TokensPerFill {
			return fmt.Sprintf("not per client address: %s", raw)
		}
		families = append(families, family)
		rates = append(rates, fmt.Sprintf("%d per %s", b.TokensPerFill, b.FillInterval))
	}
	if len(rates) != 2 || rates[0] != rates[1] {
		return fmt.Sprintf("rates %v for %v", rates, families)
	}
	return fmt.Sprintf("%s per client address (%s)", rates[0], strings.Join(families, ", "))
}

// translateWhen awaits the route as ok says, then the gateway's report on it, and translates.
func translateWhen(t *testing.T, ns string, ok func(*gatewayv1.HTTPRoute) bool) fixtures.Translation {
	t.Helper()
	fixtures.Eventually(t, func() (string, bool) {
		r := getRoute(t, ns)
		b, _ := json.Marshal(r.Spec.Rules)
		return string(b), ok(r)
	})
	tr := translate(t, ns)
	if ok, why := tr.Accepted(); !ok {
		t.Fatalf("Envoy Gateway's translator did not accept the route: %s\ninput:\n%s", why, tr.Input)
	}
	return tr
}

func deletePolicy(t *testing.T, ns string) {
	t.Helper()
	p := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}}
	if err := k8s.Delete(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	fixtures.Eventually(t, func() (string, bool) {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), p)
		return fmt.Sprint(err), client.IgnoreNotFound(err) == nil && err != nil
	})
}

// TestAtRestTheArmedDirectResponseCostsNoWrite: passes of a policy at rest (its annotations
// touched, the route's status reported again) write neither the route nor the HTTPRouteFilter:
// every field the CRD defaults is written as stored.
func TestAtRestTheArmedDirectResponseCostsNoWrite(t *testing.T) {
	ns := fixture(t, "at-rest")
	fixtures.Create(t, k8s, policy(ns, canvaRunbook))
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionArmed), "True") && envoyObject(t, ns, envoygateway.FilterGVK.Kind) != nil
	})
	stored := envoyObject(t, ns, envoygateway.FilterGVK.Kind)
	p := eventuallyPolicy(t, ns, func(*v1alpha1.TrafficPolicy) bool { return true })
	if got, want := js(stored.Object["spec"]), js(map[string]any{"directResponse": envoygateway.DirectResponse(p)}); got != want {
		t.Errorf("the API server stores another HTTPRouteFilter than Floodgate writes (a default it does not write makes a write every pass):\nstored %s\nwrote  %s", got, want)
	}
	filter, route := stored.GetResourceVersion(), getRoute(t, ns).ResourceVersion
	for i := range 3 {
		editPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) {
			metav1.SetMetaDataAnnotation(&p.ObjectMeta, "example.com/touched", fmt.Sprint(i))
		})
		eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.ObservedGeneration == p.Generation })
	}
	clk.Advance(time.Minute) // a requeue due at rest, if any, fires
	time.Sleep(500 * time.Millisecond)
	if got := envoyObject(t, ns, envoygateway.FilterGVK.Kind).GetResourceVersion(); got != filter {
		t.Errorf("the HTTPRouteFilter was written at rest: resourceVersion %s → %s", filter, got)
	}
	if got := getRoute(t, ns).ResourceVersion; got != route {
		t.Errorf("the route was written at rest: resourceVersion %s → %s", route, got)
	}
}

// TestABackendTrafficPolicyOfYoursOnTheRouteRefusesTheLimitUpFrontAndOneOnTheGatewayIsMerged:
// Envoy Gateway applies one policy per route (the oldest), so a limit beside yours on the route
// is refused before the incident, naming yours, while the shed still works; one of yours on the
// Gateway keeps its retries beside Floodgate's limit (StrategicMerge), as the translator shows.
func TestABackendTrafficPolicyOfYoursOnTheRouteRefusesTheLimitUpFrontAndOneOnTheGatewayIsMerged(t *testing.T) {
	ns := fixture(t, "yours")
	fixtures.Create(t, k8s, btp(ns, "circuit-breakers", `{targetSelectors: [{kind: HTTPRoute, matchLabels: {tier: edge}}], circuitBreaker: {maxConnections: 2048}}`),
		policy(ns, canvaRunbook))
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionStepUnsupported), "True")
	})
	if msg := condition(p, v1alpha1.ConditionStepUnsupported); !strings.Contains(msg, "targeted by BackendTrafficPolicy circuit-breakers, not Floodgate's") {
		t.Fatalf("StepUnsupported: %s", msg)
	}
	fixtures.KubectlFloodgate(t, kubeconfig, clk, "shed", "api", "-n", ns, "--wait")
	tr := translateWhen(t, ns, func(r *gatewayv1.HTTPRoute) bool { return len(r.Spec.Rules[0].BackendRefs) == 0 })
	if got := tr.Reach(t, requests[0]); got != direct {
		t.Errorf("the shed is the proxy's whatever the limit: %s", got)
	}
	if envoyObject(t, ns, envoygateway.PolicyGVK.Kind) != nil {
		t.Error("a BackendTrafficPolicy of Floodgate's beside yours")
	}

	t.Log("yours on the Gateway instead: the limit is written, merged")
	if err := k8s.Delete(context.Background(), btp(ns, "circuit-breakers", "{}")); err != nil {
		t.Fatal(err)
	}
	fixtures.Create(t, k8s, btp(ns, "retries", `{targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: eg}], retry: {numRetries: 3}}`))
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionStepUnsupported), "False")
	})
	fixtures.KubectlFloodgate(t, kubeconfig, clk, "ramp", "api", "-n", ns, "--wait")
	tr = translateWhen(t, ns, limitedAt(ns, 50))
	assertLimited(t, tr, 50, want{toAPI, toShed, toShed, toAPI, toV2, toShed, toShed, toV2})
	if r := tr.Route(t, requests[0]); r.Route == nil || r.Route.RetryPolicy == nil || r.Route.RetryPolicy.NumRetries != 3 {
		t.Errorf("your Gateway's retries were set aside by Floodgate's limit: %+v", r.Route)
	}
}

// TestALimitEnvoyGatewayDoesNotAcceptIsRejectedByTheGateway: the BackendTrafficPolicy's
// ancestors' verdict counts: Accepted=False is Degraded (RejectedByGateway) with its message.
func TestALimitEnvoyGatewayDoesNotAcceptIsRejectedByTheGateway(t *testing.T) {
	ns := fixture(t, "rejected")
	fixtures.Create(t, k8s, policy(ns, canvaRunbook))
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionArmed), "True")
	})
	fixtures.KubectlFloodgate(t, kubeconfig, clk, "ramp", "api", "-n", ns, "--wait")
	limit := fixtures.Eventually(t, func() (*unstructured.Unstructured, bool) {
		u := envoyObject(t, ns, envoygateway.PolicyGVK.Kind)
		return u, u != nil
	})
	before := limit.DeepCopy()
	if err := unstructured.SetNestedSlice(limit.Object, []any{map[string]any{
		"ancestorRef":    map[string]any{"group": gatewayv1.GroupName, "kind": "HTTPRoute", "name": "api"},
		"controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
		"conditions": []any{map[string]any{"type": "Accepted", "status": "False", "reason": "Conflicted",
			"message": "an older BackendTrafficPolicy targets the route", "observedGeneration": limit.GetGeneration(), "lastTransitionTime": "2024-11-12T09:00:00Z"}},
	}}, "status", "ancestors"); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Status().Patch(context.Background(), limit, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionDegraded), "True "+v1alpha1.ReasonRejectedByGateway)
	})
	if msg := condition(p, v1alpha1.ConditionDegraded); !strings.Contains(msg, "an older BackendTrafficPolicy targets the route") {
		t.Errorf("Degraded: %s", msg)
	}
}

// TestTheDirectResponseOutlivesItsLastReferenceUntilEnvoyGatewayReports: a rule referencing a
// missing HTTPRouteFilter answers 500, so the filter of a deleted policy goes only once the
// gateway has reported on the restored route.
func TestTheDirectResponseOutlivesItsLastReferenceUntilEnvoyGatewayReports(t *testing.T) {
	ns := fixture(t, "last-reference")
	before := getRoute(t, ns)
	fixtures.Create(t, k8s, policy(ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll }))
	translateWhen(t, ns, func(r *gatewayv1.HTTPRoute) bool { return len(r.Spec.Rules[0].BackendRefs) == 0 })

	paused.Store(ns, true)
	t.Cleanup(func() { paused.Delete(ns) })
	if err := k8s.Delete(context.Background(), policy(ns, func(*v1alpha1.TrafficPolicy) {})); err != nil {
		t.Fatal(err)
	}
	restored := fixtures.Eventually(t, func() (*gatewayv1.HTTPRoute, bool) {
		r := getRoute(t, ns)
		return r, equality.Semantic.DeepEqual(r.Spec, before.Spec)
	})
	time.Sleep(time.Second) // passes that find the route restored but not reported on
	if envoyObject(t, ns, envoygateway.FilterGVK.Kind) == nil {
		t.Fatalf("the HTTPRouteFilter went before Envoy Gateway reported on generation %d of the route", restored.Generation)
	}
	paused.Delete(ns)
	fixtures.Eventually(t, func() (string, bool) {
		return "the HTTPRouteFilter stands", envoyObject(t, ns, envoygateway.FilterGVK.Kind) == nil
	})
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// btp is a BackendTrafficPolicy of the user's, its spec given in YAML.
func btp(ns, name, spec string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(spec), &u.Object); err != nil {
		panic(err)
	}
	u.Object = map[string]any{"spec": u.Object}
	u.SetGroupVersionKind(envoygateway.PolicyGVK)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}
