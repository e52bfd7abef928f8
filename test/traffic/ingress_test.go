package traffic

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/test/fixtures"
)

// namespaces counts the namespaces the suite made, so each has a name of its own (-count=N).
var namespaces atomic.Int32

// appBackend creates, in a new namespace (NAME-N), the app's Service (port 80 to the app's 8080)
// and its EndpointSlice (the app in the test host), and returns the namespace.
func appBackend(t *testing.T, name string) string {
	t.Helper()
	name = fmt.Sprintf("%s-%d", name, namespaces.Add(1))
	fixtures.Create(t, k8s,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: name}, Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(appPort)}}}},
		&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "app-1", Namespace: name, Labels: map[string]string{discoveryv1.LabelServiceName: "app"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host.PeerAddress}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](appPort)}},
		})
	fixtures.DeletePoliciesWhenDone(t, k8s, name)
	return name
}

// ingressFixture creates the app, the Ingress api (host NAMESPACE.example.com, / to the app) of
// ingress-nginx's class, and a policy api on it with edit applied (Normal), and waits until the
// app answers through Traefik. It returns the namespace and the Ingress as created.
func ingressFixture(t *testing.T, name string, edit func(*v1alpha1.TrafficPolicy)) (string, *networkingv1.Ingress) {
	t.Helper()
	ns := appBackend(t, name)
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr.To(ingressClass), Rules: []networkingv1.IngressRule{{
			Host: ns + ".example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "app", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
	p := &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
		Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs: []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "api"}},
			Action:     v1alpha1.ActionNormal,
		},
	}
	if edit != nil {
		edit(p)
	}
	fixtures.Create(t, k8s, ing, p)
	settle(t, get(ns+".example.com"), app)
	created := &networkingv1.Ingress{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ing), created); err != nil {
		t.Fatal(err)
	}
	return ns, created
}

// unchanged fails unless the Ingress is as it was created: spec, labels and annotations.
func unchanged(t *testing.T, was *networkingv1.Ingress) {
	t.Helper()
	now := &networkingv1.Ingress{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(was), now); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(now.Spec, was.Spec) || !equality.Semantic.DeepEqual(now.Annotations, was.Annotations) ||
		!equality.Semantic.DeepEqual(now.Labels, was.Labels) {
		t.Fatalf("Ingress %s/%s is not as it was set up:\nwas %+v %v\nnow %+v %v", was.Namespace, was.Name, was.Spec, was.Annotations, now.Spec, now.Annotations)
	}
}
