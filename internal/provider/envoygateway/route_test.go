package envoygateway_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/confirm"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/envoygateway"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/test/fixtures"
)

func route() *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge", Labels: map[string]string{"tier": "edge"}}}
}

func object(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestWhichBackendTrafficPoliciesTargetARoute: a policy of someone else's on the route, by any of
// Envoy Gateway's three ways of targeting, conflicts with a limit; one on the Gateway or another
// route does not.
func TestWhichBackendTrafficPoliciesTargetARoute(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       bool
	}{
		{"targetRefs", `{targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]}`, true},
		{"targetRefs with a rule's sectionName", `{targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api, sectionName: uploads}]}`, true},
		{"the deprecated targetRef", `{targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}}`, true},
		{"targetSelectors by label", `{targetSelectors: [{kind: HTTPRoute, matchLabels: {tier: edge}}]}`, true},
		{"targetSelectors by expression", `{targetSelectors: [{group: gateway.networking.k8s.io, kind: HTTPRoute, matchExpressions: [{key: tier, operator: In, values: [edge, web]}]}]}`, true},
		{"another route", `{targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: web}]}`, false},
		{"the Gateway", `{targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: eg}]}`, false},
		{"a selector of other labels", `{targetSelectors: [{kind: HTTPRoute, matchLabels: {tier: internal}}]}`, false},
		{"a selector of Gateways", `{targetSelectors: [{kind: Gateway, matchLabels: {tier: edge}}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			btp := object(t, "{spec: "+tc.spec+"}")
			if got := envoygateway.TargetsRoute(btp, route()); got != tc.want {
				t.Errorf("TargetsRoute = %t, want %t", got, tc.want)
			}
		})
	}
}

// TestAPolicyNotAcceptedByEnvoyGatewaySaysWhy: only an ancestor's Accepted=False at the policy's
// current generation is a rejection.
func TestAPolicyNotAcceptedByEnvoyGatewaySaysWhy(t *testing.T) {
	for _, tc := range []struct {
		name, status, want string
	}{
		{"no status yet", `{}`, ""},
		{"accepted", `{ancestors: [{ancestorRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}, controllerName: c,
			conditions: [{type: Accepted, status: "True", reason: Accepted, message: ok, observedGeneration: 2, lastTransitionTime: "2024-11-12T09:00:00Z"}]}]}`, ""},
		{"conflicted", `{ancestors: [{ancestorRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}, controllerName: c,
			conditions: [{type: Accepted, status: "False", reason: Conflicted, message: "an older policy targets it", observedGeneration: 2, lastTransitionTime: "2024-11-12T09:00:00Z"}]}]}`,
			"HTTPRoute api (Accepted=False, Conflicted: an older policy targets it)"},
		{"a verdict on an older generation", `{ancestors: [{ancestorRef: {name: eg}, controllerName: c,
			conditions: [{type: Accepted, status: "False", reason: Invalid, message: old, observedGeneration: 1, lastTransitionTime: "2024-11-12T09:00:00Z"}]}]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			btp := object(t, "{status: "+tc.status+"}")
			btp.SetGeneration(2)
			if got := envoygateway.NotAccepted(btp); got != tc.want {
				t.Errorf("NotAccepted = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTheDirectResponseIsTheShedServersAnswerWithTheMarksAProbeReads: the proxy answers what the
// shed server would (status, Retry-After, the JSON body), marked for the confirmation's probes.
func TestTheDirectResponseIsTheShedServersAnswerWithTheMarksAProbeReads(t *testing.T) {
	policy := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge", Generation: 7},
		Spec: v1alpha1.TrafficPolicySpec{Shed: v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](30)}}}
	got, _ := json.Marshal(envoygateway.DirectResponse(policy))
	want, _ := json.Marshal(map[string]any{
		"statusCode": 429, "contentType": "application/json",
		"body": map[string]any{"type": "Inline", "inline": string(shed.AnswerOf(policy, nil).JSONBody())},
		"header": map[string]any{"set": []any{
			map[string]any{"name": "Retry-After", "value": "30"},
			map[string]any{"name": shed.ShedHeader, "value": "true"},
			map[string]any{"name": shed.ProbePolicyHeader, "value": "edge/api"},
			map[string]any{"name": shed.ProbeGenerationHeader, "value": "7"},
		}},
	})
	if string(got) != string(want) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if !strings.Contains(string(got), `\"policy\":\"edge/api\"`) {
		t.Errorf("the body names the policy, as the shed server's does: %s", got)
	}
}

// TestAProbeAnsweredByTheDirectResponseConfirmsTheShed: what Envoy answers from the filter is
// what the confirmation's probes take for the policy's shed at its generation, and only that.
func TestAProbeAnsweredByTheDirectResponseConfirmsTheShed(t *testing.T) {
	policy := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge", Generation: 7}}
	dr := envoygateway.DirectResponse(policy)
	res := &http.Response{StatusCode: int(dr["statusCode"].(int64)), Header: http.Header{}}
	for _, h := range dr["header"].(map[string]any)["set"].([]any) {
		res.Header.Set(h.(map[string]any)["name"].(string), h.(map[string]any)["value"].(string))
	}
	shedProbe := confirm.Probe{Expect: confirm.ExpectShed, Code: 503}
	answer := confirm.AnswerOf(res)
	if !confirm.Lands(shedProbe, answer, "edge/api", 7) {
		t.Errorf("the direct response does not confirm the shed: %s", answer)
	}
	if confirm.Lands(shedProbe, answer, "edge/api", 8) || confirm.Lands(shedProbe, answer, "edge/web", 7) {
		t.Errorf("an answer of an older generation or another policy confirms nothing: %s", answer)
	}
	if confirm.Lands(confirm.Probe{Expect: confirm.ExpectAdmitted}, answer, "edge/api", 7) {
		t.Errorf("an admitted probe that gets the direct response was not admitted: %s", answer)
	}
}

// TestTheLimitIsOneBucketPerClientAddressOfEitherFamily: two rules, because sourceCIDR needs a
// value, each Distinct; merged into the Gateway's policy, never replacing it.
func TestTheLimitIsOneBucketPerClientAddressOfEitherFamily(t *testing.T) {
	got, _ := json.Marshal(envoygateway.RateLimitSpec("api", 50))
	want := `{"mergeType":"StrategicMerge","rateLimit":{"local":{"rules":[` +
		`{"clientSelectors":[{"sourceCIDR":{"invert":false,"type":"Distinct","value":"0.0.0.0/0"}}],"limit":{"requests":50,"unit":"Second"}},` +
		`{"clientSelectors":[{"sourceCIDR":{"invert":false,"type":"Distinct","value":"::/0"}}],"limit":{"requests":50,"unit":"Second"}}]}},` +
		`"targetRefs":[{"group":"gateway.networking.k8s.io","kind":"HTTPRoute","name":"api"}]}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestEnvoyGatewaysColumnHasWhatCoreGatewayAPILacks: the proxy answers the shed and limits per
// client; the status capabilities say so.
func TestEnvoyGatewaysColumnHasWhatCoreGatewayAPILacks(t *testing.T) {
	core := (&gatewayapi.Provider{}).Mechanisms()[0].How
	eg := envoygateway.New(gatewayapi.Provider{}).Mechanisms()[0].How
	for knob, want := range map[string]string{
		provider.KnobShedAll:       "HTTPRouteFilter",
		provider.KnobPerClientRate: "BackendTrafficPolicy",
	} {
		if !strings.Contains(eg[knob], want) || strings.Contains(core[knob], want) {
			t.Errorf("%s: Envoy Gateway %q, core %q: only Envoy Gateway's says %q", knob, eg[knob], core[knob], want)
		}
	}
	if c := envoygateway.Capabilities; c.RateLimitStatusCode != 429 || c.RateLimitScope != "PerClientPerReplica" || c.ShedAnsweredBy != v1alpha1.ShedAnsweredByProxy {
		t.Errorf("capabilities %+v", c)
	}
	if eg[provider.KnobRedirect] != core[provider.KnobRedirect] {
		t.Errorf("a redirect is core Gateway API's RequestRedirect: %q", eg[provider.KnobRedirect])
	}
}

// TestTheCRDCopiesAreEnvoyGatewaysModule: test/crds/envoy-gateway holds the CRDs of the Envoy
// Gateway module of the version hack/egctl.sh builds, byte for byte (make envoy-gateway-crds
// refreshes them).
func TestTheCRDCopiesAreEnvoyGatewaysModule(t *testing.T) {
	dir, version := fixtures.PinnedModule(t, filepath.Join("..", "..", "..", "hack", "egctl.sh"), `EGCTL_VERSION:-(v[0-9.]+)\}`, "github.com/envoyproxy/gateway")
	copies, _ := filepath.Glob(filepath.Join("..", "..", "..", "test", "crds", "envoy-gateway", "*.yaml"))
	if len(copies) != 2 {
		t.Fatalf("%d copies, want the HTTPRouteFilter's and the BackendTrafficPolicy's", len(copies))
	}
	for _, c := range copies {
		mine, _ := os.ReadFile(c)
		theirs, err := os.ReadFile(filepath.Join(dir, "charts", "gateway-helm", "charts", "crds", "crds", "generated", filepath.Base(c)))
		if err != nil || len(mine) == 0 || string(mine) != string(theirs) {
			t.Errorf("%s differs from Envoy Gateway %s's (run make envoy-gateway-crds): %v", c, version, err)
		}
	}
}
