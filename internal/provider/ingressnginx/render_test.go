package ingressnginx

import (
	"reflect"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/restore"
)

func policy() *v1alpha1.TrafficPolicy {
	return &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api-gateway", Namespace: "edge"},
		Spec: v1alpha1.TrafficPolicySpec{
			RegionHeader:  "CF-IPCountry",
			MissingRegion: v1alpha1.MissingRegionAdmit,
			Shed:          v1alpha1.ShedResponse{StatusCode: ptr.To[int32](503), RetryAfterSeconds: ptr.To[int32](120)},
		},
	}
}

func target() *networkingv1.Ingress {
	prefix, exact := networkingv1.PathTypePrefix, networkingv1.PathTypeExact
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge", Annotations: map[string]string{
			"kubernetes.io/ingress.class": "nginx-public", "nginx.ingress.kubernetes.io/limit-rps": "1000"}},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "api.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
				{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
				{Path: "/health", PathType: &exact, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Name: "http"}}}},
			}}}}}},
	}
}

func TestCanaryAnnotationsForEachKnob(t *testing.T) {
	shedInfo := map[string]string{
		"kubernetes.io/ingress.class":      "nginx-public",
		"traffic.floodgate.dev/canary-for": "api",
	}
	with := func(m map[string]string) map[string]string {
		out := map[string]string{"nginx.ingress.kubernetes.io/canary": "true"}
		for k, v := range shedInfo {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	cases := []struct {
		name  string
		knobs knobs.Knobs
		want  map[string]string
	}{
		{"shed all", knobs.ShedAll(), with(map[string]string{"nginx.ingress.kubernetes.io/canary-weight": "100"})},
		{"allowlist", knobs.New(true, []string{"NZ", "AU"}, 0, 0), with(map[string]string{
			"nginx.ingress.kubernetes.io/canary-by-header":         "CF-IPCountry",
			"nginx.ingress.kubernetes.io/canary-by-header-pattern": `^([^AN].*|A([^U].*|U(.+))?|N([^Z].*|Z(.+))?)?$`,
		})},
		{"admit 30%", knobs.New(false, nil, 0, 30), with(map[string]string{"nginx.ingress.kubernetes.io/canary-weight": "70"})},
		{"allowlist and a share", knobs.New(true, []string{"AU"}, 0, 50), with(map[string]string{
			"nginx.ingress.kubernetes.io/canary-weight":            "50",
			"nginx.ingress.kubernetes.io/canary-by-header":         "CF-IPCountry",
			"nginx.ingress.kubernetes.io/canary-by-header-pattern": `^([^A].*|A([^U].*|U(.+))?)?$`,
		})},
	}
	for _, c := range cases {
		got := RenderCanary(policy(), target(), c.knobs)
		if got == nil {
			t.Errorf("%s: no canary rendered", c.name)
			continue
		}
		if !reflect.DeepEqual(got.Annotations, c.want) {
			t.Errorf("%s: annotations\n got %v\nwant %v", c.name, got.Annotations, c.want)
		}
	}
}

func TestCanaryCopiesEveryHostPathAndPathTypeToTheShedService(t *testing.T) {
	got := RenderCanary(policy(), target(), knobs.ShedAll())
	if got == nil {
		t.Fatal("no canary rendered for ShedAll")
	}
	if got.Name != "api-floodgate-api-gateway" || got.Namespace != "edge" {
		t.Fatalf("name %s/%s", got.Namespace, got.Name)
	}
	if len(got.Spec.Rules) != 1 || got.Spec.Rules[0].HTTP == nil {
		t.Fatalf("rules differ from the target: %+v", got.Spec.Rules)
	}
	paths := got.Spec.Rules[0].HTTP.Paths
	if got.Spec.Rules[0].Host != "api.example.com" || len(paths) != 2 ||
		paths[0].Path != "/" || ptr.Deref(paths[0].PathType, "") != networkingv1.PathTypePrefix ||
		paths[1].Path != "/health" || ptr.Deref(paths[1].PathType, "") != networkingv1.PathTypeExact {
		t.Fatalf("rules differ from the target: %+v", got.Spec.Rules)
	}
	for _, p := range paths {
		if p.Backend.Service.Name != "floodgate-shed-api-gateway" || p.Backend.Service.Port.Number != 80 {
			t.Fatalf("backend %+v, want the shed Service on port 80", p.Backend.Service)
		}
	}
}

func TestTheShedAnswerIsNotCarriedOnTheCanary(t *testing.T) {
	// The shed server reads the answer from the policy itself: an annotation on an Ingress is
	// something anyone who can create an Ingress could forge.
	p := policy()
	p.Spec.Shed = v1alpha1.ShedResponse{RedirectURL: "https://status.example.com"}
	got := RenderCanary(p, target(), knobs.ShedAll())
	for k, v := range got.Annotations {
		if v == "https://status.example.com" || k == "traffic.floodgate.dev/shed-policy" {
			t.Fatalf("the canary carries the shed answer: %s=%s", k, v)
		}
	}
}

func TestNothingShedMeansNoCanary(t *testing.T) {
	for _, k := range []knobs.Knobs{{}, knobs.New(false, nil, 50, 0)} {
		if got := RenderCanary(policy(), target(), k); got != nil {
			t.Errorf("%+v: rendered a canary %v", k, got.Annotations)
		}
	}
}

func TestOnlyTheRateLimitEditsTheMainIngress(t *testing.T) {
	want := []restore.Change{{Path: []string{"metadata", "annotations", "nginx.ingress.kubernetes.io/limit-rps"}, Value: "50"}}
	if got := MainChanges(knobs.New(true, []string{"AU"}, 50, 0)); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if got := MainChanges(knobs.ShedAll()); got != nil {
		t.Fatalf("ShedAll must not edit the main Ingress: %+v", got)
	}
}

func TestMissingRegionShedIsRefusedOnlyWhenAnAllowlistIsInForce(t *testing.T) {
	p := policy()
	p.Spec.MissingRegion = v1alpha1.MissingRegionShed
	if Unsupported(p, nil, knobs.New(true, []string{"AU"}, 0, 0)) == "" {
		t.Fatal("an allowlist with missingRegion Shed must be refused")
	}
	if msg := Unsupported(p, nil, knobs.ShedAll()); msg != "" {
		t.Fatalf("ShedAll sheds requests without the header too; got %q", msg)
	}
}

func TestAHostOnlyRuleIsNeverCopiedIntoTheCanary(t *testing.T) {
	// ingress-nginx's mergeAlternativeBackends ranges over a canary rule's HTTP.Paths without a
	// nil check: a host-only canary rule is a nil-pointer panic in its sync loop and webhook.
	ing := target()
	ing.Spec.Rules = append(ing.Spec.Rules, networkingv1.IngressRule{Host: "bare.example.com"},
		networkingv1.IngressRule{Host: "empty.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}})
	got := RenderCanary(policy(), ing, knobs.ShedAll())
	if got == nil {
		t.Fatal("no canary rendered for ShedAll")
	}
	if len(got.Spec.Rules) != 1 || got.Spec.Rules[0].Host != "api.example.com" {
		t.Fatalf("rules %+v: only the rule with paths may be copied", got.Spec.Rules)
	}
	for _, r := range got.Spec.Rules {
		if r.HTTP == nil || len(r.HTTP.Paths) == 0 {
			t.Fatalf("a canary rule without paths: %+v", r)
		}
	}

	ing.Spec.Rules = ing.Spec.Rules[1:2]
	if got := RenderCanary(policy(), ing, knobs.ShedAll()); got != nil {
		t.Fatalf("a target with nothing a canary can cover gets no canary, got %+v", got.Spec)
	}
	if msg := Unsupported(policy(), ing, knobs.ShedAll()); !strings.Contains(msg, "has no path a canary can cover") {
		t.Fatalf("it cannot be shed, and says so: %q", msg)
	}
}
