package crdcheck

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
)

var regionCode = regexp.MustCompile(v1alpha1.RegionCodePattern)

// FuzzWhatTheCRDAcceptsTheControllerCanUse sends specs through the CRD's own schema, defaults
// and CEL rules (what `kubectl apply` would get), and checks that every spec the CRD accepts
// keeps the promises the controller relies on: names are object names, durations are within
// their bounds, a redirect is a plain https URL, region codes cannot reach a pattern as syntax,
// and every action can be planned.
func FuzzWhatTheCRDAcceptsTheControllerCanUse(f *testing.F) {
	v, err := TrafficPolicy()
	if err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "traffic_v1alpha1_trafficpolicy.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	var sample map[string]any
	if err := yaml.Unmarshal(data, &sample); err != nil {
		f.Fatal(err)
	}
	seed, _ := json.Marshal(sample["spec"])
	f.Add(seed)
	for _, s := range []string{
		`{"targetRefs":[{"name":"api"}],"action":"ShedAll","shed":{"redirectURL":"https://status.example.com/x?y=1"}}`,
		`{"targetRefs":[{"name":"a.b"}],"action":"Ramp","ramp":{"gate":{"interval":"1s","passFor":"1s"},"steps":[{"hold":"1s","allowRegions":["AU","US-CA"],"gates":[{"name":"g","webhook":{"url":"http://x","timeout":"30s"}}]}]}}`,
		`{"targetRefs":[{"name":"api"}],"staleAfter":"1m","autoscaling":{"releaseAfter":"0s"},"allowRegions":["NZ"],"allowRegionsExpiresAt":"2026-01-01T00:00:00Z"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, spec []byte) {
		var s map[string]any
		if json.Unmarshal(spec, &s) != nil {
			return
		}
		obj := map[string]any{"apiVersion": "traffic.floodgate.dev/v1alpha1", "kind": "TrafficPolicy",
			"metadata": map[string]any{"name": "p", "namespace": "edge"}, "spec": s}
		if errs := v.Check(context.Background(), obj); len(errs) > 0 {
			return
		}
		accepted, _ := json.Marshal(obj)
		var p v1alpha1.TrafficPolicy
		if err := json.Unmarshal(accepted, &p); err != nil {
			t.Fatalf("the CRD accepted what the Go types cannot hold: %v\n%s", err, accepted)
		}
		keptPromises(t, &p, accepted)
	})
}

func keptPromises(t *testing.T, p *v1alpha1.TrafficPolicy, accepted []byte) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\naccepted: %s", append(args, accepted)...)
	}
	for _, r := range p.Spec.TargetRefs {
		if errs := k8svalidation.IsDNS1123Subdomain(r.Name); len(errs) > 0 {
			fail("target name %q: %v", r.Name, errs)
		}
	}
	for _, a := range p.Spec.AutoscalerRefs {
		if errs := k8svalidation.IsDNS1123Subdomain(a.Name); len(errs) > 0 {
			fail("autoscaler name %q: %v", a.Name, errs)
		}
	}
	if u := p.Spec.Shed.RedirectURL; u != "" {
		parsed, err := url.Parse(u)
		if err != nil || parsed.Scheme != "https" || parsed.User != nil || parsed.Fragment != "" || parsed.Host == "" || strings.ContainsAny(u, " \"'<>\r\n") {
			fail("redirect %q", u)
		}
	}
	within := func(what string, d time.Duration, lo, hi time.Duration) {
		if d < lo || d > hi {
			fail("%s %s outside [%s, %s]", what, d, lo, hi)
		}
	}
	if ra := p.Spec.Autoscaling.ReleaseAfter; ra != nil {
		within("releaseAfter", ra.Duration, 0, 24*time.Hour)
	}
	if sa := p.Spec.StaleAfter; sa != nil {
		within("staleAfter", sa.Duration, time.Minute, 168*time.Hour)
	}
	regions := append([]string(nil), p.Spec.AllowRegions...)
	if p.Spec.Ramp != nil {
		interval, passFor := core.GateInterval(p.Spec), 30*time.Second
		if pf := p.Spec.Ramp.Gate.PassFor; pf != nil {
			passFor = pf.Duration
		}
		within("interval", interval, time.Second, time.Hour)
		if passFor < interval {
			fail("passFor %s under interval %s", passFor, interval)
		}
		for _, step := range p.Spec.Ramp.Steps {
			within("hold", step.Hold.Duration, time.Second, 24*time.Hour)
			regions = append(regions, step.AllowRegions...)
			for _, g := range step.Gates {
				if g.Webhook != nil && g.Webhook.Timeout != nil {
					within("webhook timeout", g.Webhook.Timeout.Duration, time.Millisecond, 30*time.Second)
				}
				if g.Prometheus != nil && g.Prometheus.Timeout != nil {
					within("prometheus timeout", g.Prometheus.Timeout.Duration, time.Millisecond, 30*time.Second)
				}
			}
		}
	}
	for _, r := range regions {
		if !regionCode.MatchString(r) {
			fail("region %q", r)
		}
	}
	if len(regions) > 0 {
		if _, err := regexp.Compile(ingressnginx.ComplementPattern(regions)); err != nil {
			fail("pattern: %v", err)
		}
	}
	for _, action := range []v1alpha1.Action{v1alpha1.ActionNormal, v1alpha1.ActionShedAll, v1alpha1.ActionRamp} {
		spec := p.Spec
		spec.Action = action
		if action == v1alpha1.ActionRamp && (spec.Ramp == nil || len(spec.Ramp.Steps) == 0) {
			continue
		}
		plan := core.MakePlan(core.PlanInput{Spec: spec, Now: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), DefaultReleaseAfter: 5 * time.Minute})
		if plan.Phase == "" {
			fail("action %s planned no phase", action)
		}
	}
}

func TestTheSampleIsAcceptedAndKeepsThePromises(t *testing.T) {
	// The fuzz target explores around specs the CRD accepts; its sample seed must be one.
	v, err := TrafficPolicy()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "traffic_v1alpha1_trafficpolicy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	if errs := v.Check(context.Background(), obj); len(errs) > 0 {
		t.Fatalf("the sample is refused: %v", errs)
	}
	if got, _, _ := unstructured.NestedString(obj, "spec", "missingRegion"); got != "Admit" {
		t.Fatalf("defaults are not filled in: missingRegion %q", got)
	}
	accepted, _ := json.Marshal(obj)
	var p v1alpha1.TrafficPolicy
	if err := json.Unmarshal(accepted, &p); err != nil {
		t.Fatal(err)
	}
	keptPromises(t, &p, accepted)
	delete(obj["spec"].(map[string]any), "targetRefs")
	if errs := v.Check(context.Background(), obj); len(errs) == 0 {
		t.Fatal("a spec without targetRefs is accepted")
	}
}
