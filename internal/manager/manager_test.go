package manager

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/internal/controlplane"
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
