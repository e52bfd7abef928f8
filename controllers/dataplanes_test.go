package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
)

func TestDataPlanes(t *testing.T) {
	// dataPlanesOf are the data planes status names for each target, by name.
	dataPlanesOf := func(ns string) func() map[string][]string {
		return func() map[string][]string {
			out := map[string][]string{}
			for _, t := range getPolicy(t, ns, "api-gateway").Status.Targets {
				out[t.Name] = t.DataPlanes
			}
			return out
		}
	}
	warningsOf := func(ns, target string) []string {
		for _, t := range getPolicy(t, ns, "api-gateway").Status.Targets {
			if t.Name == target {
				return t.Warnings
			}
		}
		return nil
	}
	class := func(name, controller string) *networkingv1.IngressClass {
		return &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IngressClassSpec{Controller: controller}}
	}
	ingressOfClass := func(ns, name, className string) *networkingv1.Ingress {
		ing := ingressWithHost(ns, name, name+"."+ns+".test")
		ing.Spec.IngressClassName = &className
		return ing
	}

	t.Run("names each Ingress's data plane from its class's controller, the manager's mapping included, and says when another data plane's settings are written", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		traefik, mapped, other := "traefik-"+ns, "mapped-"+ns, "other-"+ns
		create(t, class(traefik, "traefik.io/ingress-controller"), class(mapped, traefikByFlag), class(other, "example.com/"+other))
		legacy := ingressWithHost(ns, "legacy", "legacy."+ns+".test")
		legacy.Spec.IngressClassName = nil
		legacy.Annotations = map[string]string{ingressnginx.AnnotationLegacyClass: traefik}
		create(t, sampleIngress(ns), ingressOfClass(ns, "on-traefik", traefik), ingressOfClass(ns, "on-mapped", mapped),
			ingressOfClass(ns, "on-other", other), legacy)
		p := samplePolicy(ns, v1alpha1.ActionNormal)
		p.Spec.AutoscalerRefs = nil
		for _, name := range []string{"on-traefik", "on-mapped", "on-other", "legacy"} {
			p.Spec.TargetRefs = append(p.Spec.TargetRefs, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: name})
		}
		create(t, p)

		g.Eventually(dataPlanesOf(ns)).Should(Equal(map[string][]string{
			"api-gateway": {"ingress-nginx"}, "on-traefik": {"traefik"}, "on-mapped": {"traefik"},
			"on-other": {"example.com/" + other}, "legacy": {"traefik"},
		}))
		g.Expect(warningsOf(ns, "on-traefik")).To(ContainElement(ContainSubstring(
			"served by traefik, which has no provider of its own in Floodgate: ingress-nginx's settings are written")))
		g.Expect(warningsOf(ns, "api-gateway")).NotTo(ContainElement(ContainSubstring("served by")))
		for _, t := range getPolicy(t, ns, "api-gateway").Status.Targets {
			g.Expect(t.Capabilities).NotTo(BeNil())
			g.Expect(t.Capabilities.Provider).To(Equal(ingressnginx.ProviderName), "every Ingress is written by the kind's one provider")
		}
	})

	t.Run("learns an Ingress's data plane when its class is created", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		late := "late-" + ns
		create(t, ingressOfClass(ns, "api-gateway", late))
		p := samplePolicy(ns, v1alpha1.ActionNormal)
		p.Spec.AutoscalerRefs = nil
		create(t, p)
		g.Eventually(func() bool { return getPolicy(t, ns, "api-gateway").Status.ObservedGeneration == 1 }).Should(BeTrue())
		g.Expect(dataPlanesOf(ns)()).To(HaveKeyWithValue("api-gateway", BeEmpty()), "no class, no known data plane")

		g.Expect(k8s.Create(context.Background(), class(late, "traefik.io/ingress-controller"))).To(Succeed())
		g.Eventually(dataPlanesOf(ns)).Should(HaveKeyWithValue("api-gateway", Equal([]string{"traefik"})))
	})

	t.Run("reads the default class's controller for an Ingress that names no class", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		def := class("default-"+ns, "traefik.io/ingress-controller")
		def.Annotations = map[string]string{ingressnginx.AnnotationDefaultClass: "true"}
		create(t, def)
		t.Cleanup(func() { g.Expect(k8s.Delete(context.Background(), def)).To(Succeed()) })
		ing := sampleIngress(ns)
		ing.Spec.IngressClassName = nil
		p := samplePolicy(ns, v1alpha1.ActionNormal)
		p.Spec.AutoscalerRefs = nil
		create(t, ing, p)
		g.Eventually(dataPlanesOf(ns)).Should(HaveKeyWithValue("api-gateway", Equal([]string{"traefik"})))
	})
}
