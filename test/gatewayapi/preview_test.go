package gatewayapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/provider/registered"
)

// A preview is the write: for every lever, the route kubectl floodgate's --dry-run renders (its
// providers built from the manager's settings, read from the cluster) is, once the API server
// has defaulted it, exactly the route the manager writes (its providers built from its options).
func TestAPreviewOfEveryLeverIsWhatTheManagerWrites(t *testing.T) {
	for i, lever := range []struct {
		name string
		pull func(*v1alpha1.TrafficPolicy)
	}{
		{"ShedAll", func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll }},
		{"ShedAll with a redirect the cluster allows", func(p *v1alpha1.TrafficPolicy) {
			p.Spec.Action, p.Spec.Shed.RedirectURL = v1alpha1.ActionShedAll, "https://"+redirectHost+"/incident"
		}},
		{"an allowlist, requests without the header admitted", func(p *v1alpha1.TrafficPolicy) { p.Spec.AllowRegions = []string{"AU", "NZ"} }},
		{"an allowlist, requests without the header shed", func(p *v1alpha1.TrafficPolicy) {
			p.Spec.AllowRegions, p.Spec.MissingRegion = []string{"AU"}, v1alpha1.MissingRegionShed
		}},
		{"a ramp step admitting a share", func(p *v1alpha1.TrafficPolicy) {
			p.Spec.Action = v1alpha1.ActionRamp
			p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{AdmitPercent: ptr.To[int32](30), Hold: metav1.Duration{Duration: time.Minute}}}}
		}},
	} {
		t.Run(lever.name, func(t *testing.T) {
			ctx := context.Background()
			ns := fixture(t, "preview-"+string(rune('a'+i)))
			create(t, policy(ns, func(*v1alpha1.TrafficPolicy) {}))
			at := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
				return p.Status.Phase == v1alpha1.PhaseNormal && p.Status.ObservedGeneration == p.Generation
			})

			t.Log("the preview, built as kubectl floodgate builds it")
			providers, err := registered.FromCluster(ctx, k8s, manager.DefaultShed.Namespace)
			if err != nil {
				t.Fatal(err)
			}
			changed := at.DeepCopy()
			lever.pull(changed)
			res, err := (&pass.Pass{Client: k8s, Providers: providers}).Preview(ctx, changed, clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			var previewed *gatewayv1.HTTPRouteSpec
			for _, c := range res.Changes {
				if c.Kind == "HTTPRoute" && c.Name == "api" {
					b, err := json.Marshal(c.After["spec"])
					if err != nil {
						t.Fatal(err)
					}
					previewed = &gatewayv1.HTTPRouteSpec{}
					if err := json.Unmarshal(b, previewed); err != nil {
						t.Fatal(err)
					}
				}
			}
			if previewed == nil {
				t.Fatalf("the preview changes no route: %+v", res)
			}

			t.Log("the manager's write, and the preview as the API server would store it")
			editPolicy(t, ns, lever.pull)
			eventually(t, func() (string, bool) {
				live := getRoute(t, ns)
				candidate := live.DeepCopy()
				candidate.Spec = *previewed.DeepCopy()
				if err := k8s.Update(ctx, candidate, client.DryRunAll); err != nil {
					return err.Error(), false
				}
				a, _ := json.Marshal(live.Spec)
				b, _ := json.Marshal(candidate.Spec)
				return "written:  " + string(a) + "\npreviewed: " + string(b), equality.Semantic.DeepEqual(live.Spec, candidate.Spec)
			})
		})
	}
}

// kubectl floodgate shed --dry-run of a policy answering with a redirect shows the redirect the
// manager writes, and a preview that cannot read the manager's settings says so.
func TestShedDryRunShowsTheRedirectTheManagerWrites(t *testing.T) {
	ns := fixture(t, "preview-redirect")
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Shed.RedirectURL = "https://" + redirectHost + "/incident" }))
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseNormal })
	out := kubectlFloodgate(t, "shed", "api", "-n", ns, "--dry-run")
	if !strings.Contains(out, "requestRedirect") || strings.Contains(out, "warning") {
		t.Fatalf("the preview does not show the manager's redirect:\n%s", out)
	}
	out = kubectlFloodgate(t, "shed", "api", "-n", ns, "--dry-run", "--floodgate-namespace", "elsewhere")
	if !strings.Contains(out, "warning: the manager's settings could not be read (ConfigMap elsewhere/floodgate-config not found): this preview assumes the defaults") {
		t.Fatalf("the preview does not say it assumed the defaults:\n%s", out)
	}
}
