package manager

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/nscache"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/scheme"
)

func TestNotReadyUntilEveryCacheHasSynced(t *testing.T) {
	cp, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	opts := cacheOptions(Options{Shed: DefaultShed})
	opts.Scheme = scheme.New()
	c, err := cache.New(cp.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cp.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	providers := registered.Providers(cl)
	ready := CachesSynced(c, providers)
	req := httptest.NewRequest("GET", "/readyz", nil)
	if err := ready(req); err == nil {
		t.Fatal("ready before the cache started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Start(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for ready(req) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %v", ready(req))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, obj := range cachedKinds(providers) {
		informer, err := c.GetInformer(ctx, obj)
		if err != nil || !informer.HasSynced() {
			t.Fatalf("ready, but the cache of %T has not synced (%v)", obj, err)
		}
	}
}

func TestTheCacheKeepsNoManagedFieldsAndOfADeploymentOnlyItsAvailability(t *testing.T) {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "a",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "edge"}}}
	out, _ := StripUnread(ing)
	got := out.(*networkingv1.Ingress)
	if got.ManagedFields != nil || len(got.Annotations) != 1 || got.Annotations["team"] != "edge" {
		t.Fatalf("kept %v %v", got.ManagedFields, got.Annotations)
	}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Generation: 3},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "api", Image: "example/api:1"}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, AvailableReplicas: 2}}
	out, _ = deploymentAvailability(d)
	kept := out.(*appsv1.Deployment)
	if *kept.Spec.Replicas != 4 || kept.Generation != 3 || kept.Status.ObservedGeneration != 3 || kept.Status.AvailableReplicas != 2 ||
		len(kept.Spec.Template.Spec.Containers) != 0 {
		t.Fatalf("kept %+v", kept)
	}
}

// A cluster-wide manager caches the targets of the namespaces that hold a policy only: a
// policy's first pass waits for its namespace's cache, and the namespace leaves the cache with its
// last policy, once that policy's restore is done.
func TestAClusterWideManagerCachesOnlyTheNamespacesThatHoldAPolicy(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	cp, err := controlplane.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = cp.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := client.New(cp.Config, client.Options{Scheme: scheme.New()})
	g.Expect(err).NotTo(HaveOccurred())
	for _, ns := range []string{DefaultShed.Namespace, "team", "elsewhere"} {
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	for _, ns := range []string{"team", "elsewhere"} {
		g.Expect(c.Create(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{
				HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}})).To(Succeed())
	}
	mgr, err := New(ctx, cp.Config, Options{Shed: DefaultShed, SkipNameValidation: true})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = mgr.Start(ctx) }()
	g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	cached := mgr.GetCache().(*nscache.Cache)
	var everywhere networkingv1.IngressList
	g.Expect(mgr.GetCache().List(ctx, &everywhere)).To(Succeed())
	g.Expect(everywhere.Items).To(BeEmpty(), "no namespace holds a policy: no Ingress is cached")

	policy := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "edge"},
		Spec: v1alpha1.TrafficPolicySpec{Action: v1alpha1.ActionNormal, RegionHeader: "CF-IPCountry",
			TargetRefs: []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "web"}}}}
	g.Expect(c.Create(ctx, policy)).To(Succeed())
	phase := func() v1alpha1.Phase {
		var p v1alpha1.TrafficPolicy
		if err := c.Get(ctx, client.ObjectKeyFromObject(policy), &p); err != nil || p.Status.ObservedGeneration != p.Generation {
			return ""
		}
		return p.Status.Phase
	}
	g.Eventually(phase).Should(Equal(v1alpha1.PhaseNormal))
	g.Expect(cached.Namespaces()).To(Equal([]string{"team"}))
	g.Eventually(func() int { return targetCount(ctx, c, policy) }).Should(Equal(1), "the first pass found its target in the namespace's cache")

	g.Expect(c.Patch(ctx, policy, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"action":"ShedAll"}}`)))).To(Succeed())
	g.Eventually(phase).Should(Equal(v1alpha1.PhaseShedding))
	g.Expect(mgr.GetCache().List(ctx, &everywhere)).To(Succeed())
	for _, ing := range everywhere.Items {
		g.Expect(ing.Namespace).To(Equal("team"), "only the policy's namespace is cached")
	}

	g.Expect(c.Delete(ctx, policy)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(policy), &v1alpha1.TrafficPolicy{}))
	}).Should(BeTrue())
	g.Eventually(cached.Namespaces).Should(BeEmpty(), "the namespace leaves the cache with its last policy")
	var ingresses networkingv1.IngressList
	g.Expect(c.List(ctx, &ingresses, client.InNamespace("team"))).To(Succeed())
	g.Expect(ingresses.Items).To(HaveLen(1), "the canary went with the restore, before the namespace left the cache")
}

func targetCount(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy) int {
	var p v1alpha1.TrafficPolicy
	if err := c.Get(ctx, client.ObjectKeyFromObject(policy), &p); err != nil {
		return -1
	}
	return int(p.Status.TargetCount)
}
