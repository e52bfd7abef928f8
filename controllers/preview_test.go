package controllers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/restore"
)

// A preview is the write, on Ingresses and HPAs: for every lever, each object kubectl
// floodgate's --dry-run renders (its providers built from the manager's settings, read from the
// cluster) is, once the API server has defaulted it, exactly the object the manager writes.
func TestAPreviewOfEveryLeverOnAnIngressAndItsHPA(t *testing.T) {
	gvkOf := map[string]schema.GroupVersionKind{
		"Ingress":                 {Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"},
		"HorizontalPodAutoscaler": {Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"},
	}
	// stored is an object as the API server would store it, and as it stores it: the preview's
	// view (labels, annotations, spec) dry-run onto the live object, and the live object.
	stored := func(ns string, c provider.ObjectChange) (previewed, written map[string]any, err error) {
		ctx := context.Background()
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(gvkOf[c.Kind])
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: c.Name}, live); err != nil {
			return nil, nil, err
		}
		candidate := live.DeepCopy() // a companion the preview creates is compared once written, too
		candidate.SetLabels(nil)
		candidate.SetAnnotations(nil)
		delete(candidate.Object, "spec")
		for k, v := range c.After {
			if k == "metadata" {
				md, _ := v.(map[string]any)
				if l, ok := md["labels"].(map[string]any); ok {
					_ = unstructured.SetNestedMap(candidate.Object, l, "metadata", "labels")
				}
				if a, ok := md["annotations"].(map[string]any); ok {
					_ = unstructured.SetNestedMap(candidate.Object, a, "metadata", "annotations")
				}
				continue
			}
			candidate.Object[k] = v
		}
		err = k8s.Update(ctx, candidate, client.DryRunAll)
		// Floodgate's own restore record is left out: the manager records a field's set value as
		// the API server stored it (defaulted), the preview as it renders it.
		for _, o := range []*unstructured.Unstructured{candidate, live} {
			unstructured.RemoveNestedField(o.Object, "metadata", "annotations", restore.Annotation)
		}
		return provider.UserView(candidate.Object), provider.UserView(live.Object), err
	}

	levers := []struct {
		name string
		pull func(*v1alpha1.TrafficPolicy)
	}{
		{"ShedAll", func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionShedAll }},
		{"the first ramp step: AU only, 50 requests/s per client", func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionRamp }},
		{"an allowlist, requests without the header shed", func(p *v1alpha1.TrafficPolicy) {
			p.Spec.AllowRegions, p.Spec.MissingRegion = []string{"AU", "NZ"}, v1alpha1.MissingRegionShed
		}},
		{"a ramp step admitting a share", func(p *v1alpha1.TrafficPolicy) {
			p.Spec.Action = v1alpha1.ActionRamp
			p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{AdmitPercent: ptr.To[int32](30), Hold: metav1.Duration{Duration: time.Minute}}}}
		}},
	}
	for _, lever := range levers {
		t.Run("the manager writes what the preview shows: "+lever.name, func(t *testing.T) {
			g := NewWithT(t)
			pull := lever.pull
			ctx := context.Background()
			ns := newNamespace(t)
			create(t, sampleIngress(ns), sampleDeployment(ns, 4), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionNormal))
			var at *v1alpha1.TrafficPolicy
			g.Eventually(func() bool {
				at = getPolicy(t, ns, "api-gateway")
				return at.Status.Phase == v1alpha1.PhaseNormal && at.Status.ObservedGeneration == at.Generation
			}).Should(BeTrue())

			t.Log("the preview, built as kubectl floodgate builds it")
			providers, err := registered.FromCluster(ctx, k8s, manager.DefaultShed.Namespace)
			g.Expect(err).NotTo(HaveOccurred())
			changed := at.DeepCopy()
			pull(changed)
			res, err := (&pass.Pass{Client: k8s, Providers: providers}).Preview(ctx, changed, clk.Now())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Changes).NotTo(BeEmpty(), "the preview changes nothing")

			t.Log("the manager's write of each object, and the preview as the API server would store it")
			p := getPolicy(t, ns, "api-gateway")
			pull(p)
			g.Expect(k8s.Update(ctx, p)).To(Succeed())
			for _, c := range res.Changes {
				g.Eventually(func() string {
					previewed, written, err := stored(ns, c)
					if err != nil {
						return err.Error()
					}
					a, _ := json.Marshal(written)
					b, _ := json.Marshal(previewed)
					if string(a) == string(b) {
						return ""
					}
					return c.Kind + " " + c.Name + "\nwritten:   " + string(a) + "\npreviewed: " + string(b)
				}).Should(BeEmpty())
			}
		})
	}
}
