package ingressnginx

import (
	"context"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"floodgate.dev/floodgate/internal/scheme"
)

func TestAnIngressOfAClassThatDoesNotExistCarriesNoTraffic(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(&networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx"}}).Build()
	ingress := func(class *string) *networkingv1.Ingress {
		return &networkingv1.Ingress{Spec: networkingv1.IngressSpec{IngressClassName: class}}
	}
	carries, err := (&Provider{}).ReadCarrier(context.Background(), c, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(carries(ingress(ptr.To("nginx")))) == 0 || len(carries(ingress(ptr.To("ghost")))) != 0 || len(carries(ingress(nil))) == 0 {
		t.Fatal("an Ingress carries traffic when its class exists, or when it names none")
	}
	namespaced, err := (&Provider{}).ReadCarrier(context.Background(), c, false)
	if err != nil || len(namespaced(ingress(ptr.To("ghost")))) == 0 {
		t.Fatalf("classes not read: every Ingress counts (%v)", err)
	}
}
