package gatewayapi

import (
	"context"
	"encoding/json"
	"fmt"
	discoveryv1 "k8s.io/api/discovery/v1"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/test/fixtures"
)

const (
	toAPI   = "api"
	toV2    = "api-v2 +X-Team" // the user's backend, with the user's own filter
	toShed  = "floodgate-shed-api"
	regionH = "CF-IPCountry"
)

func region(r string) *string { return &r }

// paths × region header values: allowed (AU), another (US), empty, absent.
var (
	au, us, empty = region("AU"), region("US"), region("")
	requests      = fixtures.PathsByRegion([]string{"/", "/v2/users"}, au, us, empty, nil)
)

// want is where each of requests goes, in order.
type want []string

func everywhere(dest string) want {
	w := make(want, len(requests))
	for i := range w {
		w[i] = dest
	}
	return w
}

func TestEveryLeverRoutesRequestsAsIntendedThroughEnvoyGatewayAndRestoresExactly(t *testing.T) {
	manyRegions := []string{"AU"}
	for c := 'A'; len(manyRegions) < 70; c++ {
		for d := 'A'; d <= 'Z' && len(manyRegions) < 70; d += 3 {
			if code := string(c) + string(d); code != "AU" && code != "US" {
				manyRegions = append(manyRegions, code)
			}
		}
	}
	for i, lever := range []struct {
		name   string
		edit   func(*v1alpha1.TrafficPolicy)
		want   want
		header gatewayv1.HeaderMatchType // the region header's match type in Floodgate's rule ("" none)
	}{
		{name: "ShedAll", edit: func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll }, want: everywhere(toShed)},
		{name: "ShedAll with a redirect", edit: func(p *v1alpha1.TrafficPolicy) {
			p.Spec.Action, p.Spec.Shed.RedirectURL = v1alpha1.ActionShedAll, "https://"+redirectHost+"/incident"
		}, want: everywhere("redirect to " + redirectHost + "/incident")},
		{name: "an allowlist admitting requests without the header", header: gatewayv1.HeaderMatchRegularExpression,
			edit: func(p *v1alpha1.TrafficPolicy) { p.Spec.AllowRegions = []string{"AU"} },
			want: want{toAPI, toShed, toShed, toAPI, toV2, toShed, toShed, toV2}},
		{name: "an allowlist shedding requests without the header, one Exact match per region", header: gatewayv1.HeaderMatchExact,
			edit: func(p *v1alpha1.TrafficPolicy) {
				p.Spec.AllowRegions, p.Spec.MissingRegion = []string{"AU", "NZ"}, v1alpha1.MissingRegionShed
			},
			want: want{toAPI, toShed, toShed, toShed, toV2, toShed, toShed, toShed}},
		{name: "an allowlist shedding requests without the header, too long for Exact matches", header: gatewayv1.HeaderMatchRegularExpression,
			edit: func(p *v1alpha1.TrafficPolicy) {
				p.Spec.AllowRegions, p.Spec.MissingRegion = manyRegions, v1alpha1.MissingRegionShed
			},
			want: want{toAPI, toShed, toShed, toShed, toV2, toShed, toShed, toShed}},
		{name: "admitPercent 25", edit: func(p *v1alpha1.TrafficPolicy) {
			p.Spec.Action = v1alpha1.ActionRamp
			p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{AdmitPercent: ptr.To[int32](25), Hold: metav1.Duration{Duration: time.Hour}}}}
		}, want: want{"api:1 floodgate-shed-api:3", "api:1 floodgate-shed-api:3", "api:1 floodgate-shed-api:3", "api:1 floodgate-shed-api:3",
			"api-v2:1 floodgate-shed-api:3 +X-Team", "api-v2:1 floodgate-shed-api:3 +X-Team", "api-v2:1 floodgate-shed-api:3 +X-Team", "api-v2:1 floodgate-shed-api:3 +X-Team"}},
	} {
		t.Run(lever.name, func(t *testing.T) {
			ns := fixture(t, fmt.Sprintf("lever-%d", i))
			before := getRoute(t, ns)
			atRest := translate(t, ns)
			for _, req := range requests {
				if got, w := atRest.Reach(t, req), map[bool]string{true: toV2, false: toAPI}[strings.HasPrefix(req.Path, "/v2")]; got != w {
					t.Fatalf("at rest, %s reaches %q, want %q", req, got, w)
				}
			}
			create(t, policy(ns, lever.edit))
			route := eventually(t, func() (*gatewayv1.HTTPRoute, bool) {
				r := getRoute(t, ns)
				rec, _ := restore.Read(r)
				return r, rec != nil
			})
			p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
				return strings.HasPrefix(condition(p, v1alpha1.ConditionReady), "True") && p.Status.ObservedGeneration == p.Generation
			})
			route = getRoute(t, ns)
			if lever.header != "" {
				own := route.Spec.Rules[len(route.Spec.Rules)-1]
				if own.Name == nil || *own.Name != "floodgate-api" {
					t.Fatalf("Floodgate's rule: %+v", own)
				}
				if types := regionMatchTypes(route); len(types) != 1 || types[0] != lever.header {
					t.Fatalf("region header matches of type %v, want %s", types, lever.header)
				}
			}
			tr := translate(t, ns)
			if ok, why := tr.Accepted(); !ok {
				t.Fatalf("Envoy Gateway does not accept the route Floodgate wrote: %s", why)
			}
			for i, req := range requests {
				if got := tr.Reach(t, req); got != lever.want[i] {
					t.Errorf("%s reaches %q, want %q", req, got, lever.want[i])
				}
			}
			if t.Failed() {
				t.Logf("policy status: %+v\nEnvoy routes: %+v", p.Status, tr.Routes)
				return
			}
			// At rest under the lever, Floodgate writes nothing: the render equals the stored route
			// (the played gateway may still write status).
			clk.Advance(time.Minute)
			time.Sleep(300 * time.Millisecond)
			if after := getRoute(t, ns); after.Generation != route.Generation || !equality.Semantic.DeepEqual(after.Annotations, route.Annotations) {
				t.Fatalf("the route was written again with nothing changed: generation %d -> %d\n%s\n%s\nmanaged: %+v", route.Generation, after.Generation,
					route.Annotations[restore.Annotation], after.Annotations[restore.Annotation], after.ManagedFields)
			}

			t.Log("back to Normal: the route is exactly as it was, without Floodgate's record")
			editPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) {
				p.Spec.Action, p.Spec.AllowRegions, p.Spec.Ramp = v1alpha1.ActionNormal, nil, nil
			})
			eventually(t, func() (*gatewayv1.HTTPRoute, bool) {
				r := getRoute(t, ns)
				return r, equality.Semantic.DeepEqual(r.Spec, before.Spec) && equality.Semantic.DeepEqual(r.Annotations, before.Annotations)
			})
		})
	}
}

func TestAnEditDuringTheIncidentIsKeptAndReportedAndFloodgatesRulesGoOnRestore(t *testing.T) {
	ns := fixture(t, "edit-mid-incident")
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.AllowRegions = []string{"AU"} }))
	eventually(t, func() (*gatewayv1.HTTPRoute, bool) { r := getRoute(t, ns); return r, len(r.Spec.Rules) == 3 })

	t.Log("the on-call adds a header on the /v2 rule and a /status rule, during the incident")
	editRoute(t, ns, func(r *gatewayv1.HTTPRoute) {
		r.Spec.Rules[1].Filters[0].RequestHeaderModifier.Set = append(r.Spec.Rules[1].Filters[0].RequestHeaderModifier.Set, gatewayv1.HTTPHeader{Name: "X-Incident", Value: "INC-7"})
		r.Spec.Rules = append(r.Spec.Rules, gatewayv1.HTTPRouteRule{Matches: []gatewayv1.HTTPRouteMatch{pathPrefix("/status")}, BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("api", 80)}})
	})
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return len(p.Status.KeptChanges) > 0 })
	if got := strings.Join(p.Status.KeptChanges, ", "); !strings.Contains(got, "HTTPRoute api spec.rules[1].filters") || !strings.Contains(got, "spec.rules[2] (added)") {
		t.Fatalf("kept changes: %s", got)
	}
	t.Log("the new rule is covered by the allowlist too: Floodgate's rule copies its match")
	eventually(t, func() (int, bool) {
		r := getRoute(t, ns)
		own := r.Spec.Rules[len(r.Spec.Rules)-1]
		return len(own.Matches), own.Name != nil && *own.Name == "floodgate-api" && len(own.Matches) == 3
	})

	editPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.AllowRegions = nil })
	want := userRoute(ns)
	want.Spec.Rules[1].Filters[0].RequestHeaderModifier.Set = append(want.Spec.Rules[1].Filters[0].RequestHeaderModifier.Set, gatewayv1.HTTPHeader{Name: "X-Incident", Value: "INC-7"})
	want.Spec.Rules = append(want.Spec.Rules, gatewayv1.HTTPRouteRule{Matches: []gatewayv1.HTTPRouteMatch{pathPrefix("/status")}, BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("api", 80)}})
	eventually(t, func() (string, bool) {
		r := getRoute(t, ns)
		_, recorded := r.Annotations[restore.Annotation]
		got := fmt.Sprintf("%d rules, filters of rule 1: %+v, recorded: %t", len(r.Spec.Rules), r.Spec.Rules[1].Filters[0].RequestHeaderModifier.Set, recorded)
		return got, len(r.Spec.Rules) == 3 && len(r.Spec.Rules[1].Filters[0].RequestHeaderModifier.Set) == 2 && !recorded &&
			r.Spec.Rules[2].Matches[0].Path.Value != nil && *r.Spec.Rules[2].Matches[0].Path.Value == "/status" && r.Spec.Rules[0].Name == nil
	})
}

func TestARouteTheGatewayRejectsIsDegradedTheRampHoldsAndShedAllStillApplies(t *testing.T) {
	ns := fixture(t, "rejected")
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{
			{AllowRegions: []string{"AU"}, Hold: metav1.Duration{Duration: 5 * time.Minute}},
			{AdmitPercent: ptr.To[int32](50), Hold: metav1.Duration{Duration: 5 * time.Minute}},
		}}
	}))
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseNormal })
	rejections.Store(ns, "backendRef floodgate-shed-api: not permitted by this gateway's policy")
	defer rejections.Delete(ns)
	editPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionRamp })
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionDegraded), "True "+v1alpha1.ReasonRejectedByGateway)
	})
	if msg := condition(p, v1alpha1.ConditionDegraded); !strings.Contains(msg, "not permitted by this gateway's policy") {
		t.Fatalf("the gateway's message must be carried: %s", msg)
	}
	t.Log("the ramp holds at its first step while the gateway rejects it")
	clk.Advance(6 * time.Minute)
	time.Sleep(300 * time.Millisecond)
	if p := getPolicy(t, ns); p.Status.Ramp == nil || p.Status.Ramp.Step != 1 {
		t.Fatalf("the ramp moved on past a step the gateway rejected: %+v", p.Status.Ramp)
	}

	t.Log("ShedAll is still written, and reported")
	editPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll })
	eventually(t, func() (string, bool) {
		r := getRoute(t, ns)
		return string(r.Spec.Rules[0].BackendRefs[0].Name), len(r.Spec.Rules) == 2 && r.Spec.Rules[0].BackendRefs[0].Name == toShed
	})
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return p.Status.Phase == v1alpha1.PhaseShedding && strings.HasPrefix(condition(p, v1alpha1.ConditionDegraded), "True "+v1alpha1.ReasonRejectedByGateway)
	})
	t.Log("once the gateway accepts, the policy is Ready")
	rejections.Delete(ns)
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionReady), "True") && strings.HasPrefix(condition(p, v1alpha1.ConditionDegraded), "False")
	})
}

// TestWhatTheClusterCannotDoIsRefusedUpFrontAndARuleInTheWayIsAConflict: the route is Envoy
// Gateway's, in a cluster without Envoy Gateway's CRDs (this suite installs Gateway API's only), so
// a per-client limit has nothing to be written with.
func TestWhatTheClusterCannotDoIsRefusedUpFrontAndARuleInTheWayIsAConflict(t *testing.T) {
	ns := fixture(t, "refused")
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{PerClientRequestsPerSecond: ptr.To[int32](50), Hold: metav1.Duration{Duration: time.Minute}}}}
	}))
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionStepUnsupported), "True")
	})
	if msg := condition(p, v1alpha1.ConditionStepUnsupported); !strings.Contains(msg, "perClientRequestsPerSecond on Envoy Gateway needs its BackendTrafficPolicy") {
		t.Fatalf("StepUnsupported: %s", msg)
	}

	t.Log("a rule named floodgate-* that Floodgate did not write keeps the route untouched, even for ShedAll")
	editRoute(t, ns, func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[1].Name = ptr.To(gatewayv1.SectionName("floodgate-api")) })
	before := getRoute(t, ns)
	editPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll })
	p = eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionDegraded), "True "+v1alpha1.ReasonConflict)
	})
	if msg := condition(p, v1alpha1.ConditionDegraded); !strings.Contains(msg, "rule named floodgate-api (rule 1) that this policy did not write") {
		t.Fatalf("Degraded: %s", msg)
	}
	if after := getRoute(t, ns); !equality.Semantic.DeepEqual(after.Spec, before.Spec) {
		t.Fatal("the route was written despite the conflict")
	}
}

func TestARuleNamedLikeFloodgatesAddedDuringTheLeverIsAConflictAndNeverRemoved(t *testing.T) {
	ns := fixture(t, "their-rule")
	before := getRoute(t, ns)
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll }))
	eventually(t, func() (*gatewayv1.HTTPRoute, bool) {
		r := getRoute(t, ns)
		_, recorded := r.Annotations[restore.Annotation]
		return r, recorded
	})

	t.Log("during the ShedAll (no rule of Floodgate's on the route), someone adds a rule named floodgate-api")
	theirs := gatewayv1.HTTPRouteRule{Name: ptr.To(gatewayv1.SectionName("floodgate-api")),
		Matches: []gatewayv1.HTTPRouteMatch{pathPrefix("/status")}, BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("api", 80)}}
	editRoute(t, ns, func(r *gatewayv1.HTTPRoute) { r.Spec.Rules = append(r.Spec.Rules, theirs) })
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionDegraded), "True "+v1alpha1.ReasonConflict)
	})
	if msg := condition(p, v1alpha1.ConditionDegraded); !strings.Contains(msg, "rule named floodgate-api (rule 2) that this policy did not write") {
		t.Fatalf("Degraded: %s", msg)
	}

	t.Log("back to Normal: the route is left alone while the rule is in the way (their rule is never deleted)")
	editPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionNormal })
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return p.Status.ObservedAction == v1alpha1.ActionNormal && strings.HasPrefix(condition(p, v1alpha1.ConditionDegraded), "True "+v1alpha1.ReasonConflict)
	})
	if r := getRoute(t, ns); len(r.Spec.Rules) != 3 || r.Spec.Rules[2].Name == nil || *r.Spec.Rules[2].Name != "floodgate-api" {
		t.Fatalf("their rule was removed: %+v", r.Spec.Rules)
	}

	t.Log("once they rename it, the restore gives back the user's rules and keeps theirs")
	editRoute(t, ns, func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[2].Name = ptr.To(gatewayv1.SectionName("status")) })
	eventually(t, func() (*gatewayv1.HTTPRoute, bool) {
		r := getRoute(t, ns)
		_, recorded := r.Annotations[restore.Annotation]
		return r, !recorded && len(r.Spec.Rules) == 3 && equality.Semantic.DeepEqual(r.Spec.Rules[:2], before.Spec.Rules) &&
			*r.Spec.Rules[2].Name == "status" && *r.Spec.Rules[2].Matches[0].Path.Value == "/status"
	})
}

func TestStatusAndDryRunShowTheRouteDiff(t *testing.T) {
	ns := fixture(t, "dry-run")
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) {}))
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseNormal })
	out := kubectlFloodgate(t, "shed", "api", "-n", ns, "--dry-run")
	for _, w := range []string{"--- HTTPRoute api (now)", "+++ HTTPRoute api (after)", "name: floodgate-shed-api", "-      name: api"} {
		if !strings.Contains(out, w) {
			t.Errorf("dry run does not show %q:\n%s", w, out)
		}
	}
	if r := getRoute(t, ns); r.Spec.Rules[0].BackendRefs[0].Name != "api" {
		t.Fatal("a dry run wrote the route")
	}
	t.Log("status shows what Floodgate changed on the route: the user's rules against the rules in force")
	editPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll })
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseShedding })
	out = kubectlFloodgate(t, "status", "api", "-n", ns)
	for _, w := range []string{"--- HTTPRoute api spec.rules (yours)", "+++ HTTPRoute api spec.rules (Floodgate's, in force)", "-    name: api", "+    name: floodgate-shed-api"} {
		if !strings.Contains(out, w) {
			t.Errorf("status does not show %q:\n%s", w, out)
		}
	}
}

func kubectlFloodgate(t *testing.T, args ...string) string {
	t.Helper()
	return fixtures.KubectlFloodgate(t, kubeconfig, clk, args...)
}

// regionMatchTypes are the distinct types of the route's header matches on the region header.
func regionMatchTypes(route *gatewayv1.HTTPRoute) []gatewayv1.HeaderMatchType {
	var out []gatewayv1.HeaderMatchType
	for _, r := range route.Spec.Rules {
		for _, m := range r.Matches {
			for _, h := range m.Headers {
				if string(h.Name) == regionH && !slices.Contains(out, *h.Type) {
					out = append(out, *h.Type)
				}
			}
		}
	}
	return out
}

// editRoute edits the route as a person would (kubectl edit): on the route as it is now, with
// its resourceVersion, again when someone else wrote it in between (the gateway's status).
func editRoute(t *testing.T, ns string, edit func(*gatewayv1.HTTPRoute)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		r := getRoute(t, ns)
		patch := client.MergeFromWithOptions(r.DeepCopy(), client.MergeFromWithOptimisticLock{})
		edit(r)
		return k8s.Patch(context.Background(), r, patch, client.FieldOwner("on-call"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// bigRules are 15 rules of 8 matches, each on a header a team's own edge sets, of about 150 KB
// of JSON in all: a route whose restore record, uncompressed, would hold the rules twice and
// take the route's annotations past the API server's 256 KiB.
func TestShedAllOnARouteOf150KBOfRulesIsArmedAppliedAndRestoredExactly(t *testing.T) {
	ns := fixture(t, "big-route")
	editRoute(t, ns, func(r *gatewayv1.HTTPRoute) { r.Spec.Rules = fixtures.LargeRules("api", 80) })
	before := getRoute(t, ns)
	if b, _ := json.Marshal(before.Spec.Rules); len(b) < 140_000 {
		t.Fatalf("the rules are %d bytes of JSON, want about 150 KB", len(b))
	}
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) {}))
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionArmed), "True "+v1alpha1.ReasonLeversAccepted+": ") && strings.HasSuffix(condition(p, v1alpha1.ConditionArmed), "for 1 target and 0 autoscalers")
	})

	editPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll })
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return p.Status.Phase == v1alpha1.PhaseShedding && len(p.Status.Targets) == 1 && p.Status.Targets[0].Applied.Shed
	})
	route := getRoute(t, ns)
	record := route.Annotations[restore.Annotation]
	if !strings.HasPrefix(record, restore.CompressedPrefix) {
		t.Fatalf("the record of a %d-byte route is not compressed", len(record))
	}
	t.Logf("record: %d bytes on the route (%d in status)", len(record), len(p.Status.Targets[0].RestoreRecord))
	for i, rule := range route.Spec.Rules {
		if len(rule.BackendRefs) != 1 || string(rule.BackendRefs[0].Name) != toShed {
			t.Fatalf("rule %d is not shed: %+v", i, rule.BackendRefs)
		}
	}

	editPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionNormal })
	eventually(t, func() (string, bool) {
		r := getRoute(t, ns)
		_, recorded := r.Annotations[restore.Annotation]
		return fmt.Sprintf("recorded: %t, rules equal: %t", recorded, equality.Semantic.DeepEqual(r.Spec.Rules, before.Spec.Rules)),
			!recorded && equality.Semantic.DeepEqual(r.Spec.Rules, before.Spec.Rules)
	})
}

// A policy over HTTPRoutes only follows the shed pods as an Ingress policy does: under ShedAll,
// the shed pods not ready, gone or rolled to a new address are mirrored exactly into the route's
// shed backend, and status says the gateway cannot answer the shed (never Applied while clients
// get the gateway's own 5xx); once the pods are back, Ready again.
func TestAnHTTPRoutePolicyFollowsTheShedPods(t *testing.T) {
	for i, fault := range fixtures.ShedPodFaults() {
		t.Run("the shed pods "+fault.Name, func(t *testing.T) {
			ns := fixture(t, fmt.Sprintf("shed-pods-%d", i))
			create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll }))
			eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
				return strings.HasPrefix(condition(p, v1alpha1.ConditionReady), "True "+v1alpha1.ReasonApplied)
			})

			restore, err := fixtures.SetShedPods(context.Background(), k8s, fault.Endpoints)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = restore() })
			eventually(t, func() ([]discoveryv1.Endpoint, bool) {
				slice := &discoveryv1.EndpointSlice{}
				err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: toShed}, slice)
				return slice.Endpoints, err == nil && equality.Semantic.DeepEqual(slice.Endpoints, fault.Endpoints) ||
					(len(slice.Endpoints) == 0 && len(fault.Endpoints) == 0)
			})
			p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
				return strings.HasPrefix(condition(p, v1alpha1.ConditionReady), "False "+v1alpha1.ReasonNoShedBackend+": not shedding")
			})
			if got := condition(p, v1alpha1.ConditionReady); !strings.Contains(got, "a gateway answers a shed rule whose backend has none with its own 5xx") ||
				(fault.Draining > 0) != strings.Contains(got, "terminating shed endpoint(s) still serve") {
				t.Fatalf("Ready: %s", got)
			}

			if err := restore(); err != nil {
				t.Fatal(err)
			}
			eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
				return strings.HasPrefix(condition(p, v1alpha1.ConditionReady), "True "+v1alpha1.ReasonApplied)
			})
		})
	}
}

// TestARedirectedShedAllIsAnsweredByTheGatewayWhateverTheShedPods: a ShedAll redirected on a
// route is the gateway's own RequestRedirect on every rule: no shed pod is in its path, so shed
// pods gone do not make the lever unavailable (they do for every lever that sends to them).
func TestARedirectedShedAllIsAnsweredByTheGatewayWhateverTheShedPods(t *testing.T) {
	ns := fixture(t, "redirect-no-shed-pods")
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action, p.Spec.Shed.RedirectURL = v1alpha1.ActionShedAll, "https://"+redirectHost+"/incident"
	}))
	// The redirect is written and its gateway accepted it, and the policy says so.
	eventually(t, func() (string, bool) {
		r := getRoute(t, ns)
		redirected := len(r.Spec.Rules) > 0 && len(r.Spec.Rules[0].Filters) == 1 && r.Spec.Rules[0].Filters[0].Type == gatewayv1.HTTPRouteFilterRequestRedirect
		judged := len(r.Status.Parents) > 0 && slices.IndexFunc(r.Status.Parents[0].Conditions, func(c metav1.Condition) bool { return c.ObservedGeneration == r.Generation }) >= 0
		ready := condition(getPolicy(t, ns), v1alpha1.ConditionReady)
		return ready, redirected && judged && strings.HasPrefix(ready, "True "+v1alpha1.ReasonApplied)
	})
	restore, err := fixtures.SetShedPods(context.Background(), k8s, []discoveryv1.Endpoint{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restore() })
	// The pass that mirrors the shed pods into the policy's companion writes the policy's status
	// right after; the old judgement said "not shedding" then.
	eventually(t, func() (int, bool) {
		slice := &discoveryv1.EndpointSlice{}
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: toShed}, slice)
		return len(slice.Endpoints), err == nil && len(slice.Endpoints) == 0
	})
	// Ready stays True: Applied. One pass may still say AwaitingGateway: the pass that wrote the
	// route said Applied before the gateway's verdict on that generation, and the manager's cache
	// can show the verdict later than this test reads it from the API server. That is the
	// gateway's verdict, not the shed pods; ShedBackendUnavailable (or anything else) fails.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		got := condition(getPolicy(t, ns), v1alpha1.ConditionReady)
		if !strings.HasPrefix(got, "True "+v1alpha1.ReasonApplied) && !strings.HasPrefix(got, "False "+v1alpha1.ReasonAwaitingGateway) {
			t.Fatalf("the gateway answers the redirect, yet Ready: %s", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range getRoute(t, ns).Spec.Rules {
		if len(r.BackendRefs) != 0 || len(r.Filters) != 1 || r.Filters[0].Type != gatewayv1.HTTPRouteFilterRequestRedirect {
			t.Fatalf("rule %v is not a redirect alone", r)
		}
	}
}
