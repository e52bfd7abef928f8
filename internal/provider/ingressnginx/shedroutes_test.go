package ingressnginx

import (
	"context"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/internal/controlplane"
)

// TestAnIngressOfAClassThatDoesNotExistCarriesNoTraffic reads the classes from a real API server
// (envtest): an Ingress carries traffic when its class exists or when it names none; without
// classes read (a namespaced install), every Ingress counts.
func TestAnIngressOfAClassThatDoesNotExistCarriesNoTraffic(t *testing.T) {
	cp, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	c, err := client.New(cp.Config, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Create(ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
		Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}}); err != nil {
		t.Fatal(err)
	}
	ingress := func(class *string) *networkingv1.Ingress {
		return &networkingv1.Ingress{Spec: networkingv1.IngressSpec{IngressClassName: class}}
	}
	carries, err := (&Provider{}).ReadCarrier(ctx, c, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(carries(ingress(ptr.To("nginx")))) == 0 || len(carries(ingress(ptr.To("ghost")))) != 0 || len(carries(ingress(nil))) == 0 {
		t.Fatal("an Ingress carries traffic when its class exists, or when it names none")
	}
	namespaced, err := (&Provider{}).ReadCarrier(ctx, c, false)
	if err != nil || len(namespaced(ingress(ptr.To("ghost")))) == 0 {
		t.Fatalf("classes not read: every Ingress counts (%v)", err)
	}
}
