package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	traefikprovider "floodgate.dev/floodgate/internal/provider/traefik"
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
			"api-gateway": {"ingress-nginx"}, "on-traefik": {"traefik.io/ingress-controller"}, "on-mapped": {"traefik"},
			"on-other": {"example.com/" + other}, "legacy": {"traefik.io/ingress-controller"},
		}))
		g.Expect(warningsOf(ns, "on-traefik")).To(ContainElement(ContainSubstring(
			"served by traefik.io/ingress-controller, which has no provider of its own in Floodgate: ingress-nginx's settings are written")))
		g.Expect(warningsOf(ns, "api-gateway")).NotTo(ContainElement(ContainSubstring("served by")))
		g.Expect(warningsOf(ns, "on-mapped")).NotTo(ContainElement(ContainSubstring("served by")))
		providers := map[string]v1alpha1.Capabilities{}
		for _, t := range getPolicy(t, ns, "api-gateway").Status.Targets {
			g.Expect(t.Capabilities).NotTo(BeNil())
			providers[t.Name] = *t.Capabilities
		}
		// Traefik's NGINX provider (the mapped class) has Floodgate's Traefik provider: the same
		// writes, Traefik's answer to an over-limit client.
		g.Expect(providers["on-mapped"].Provider).To(Equal(traefikprovider.ProviderName))
		g.Expect(providers["on-mapped"].RateLimitStatusCode).To(BeEquivalentTo(429))
		for _, name := range []string{"api-gateway", "on-traefik", "on-other", "legacy"} {
			g.Expect(providers[name].Provider).To(Equal(ingressnginx.ProviderName), name)
			g.Expect(providers[name].RateLimitStatusCode).To(BeEquivalentTo(503), name)
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

		g.Expect(k8s.Create(context.Background(), class(late, traefikByFlag))).To(Succeed())
		g.Eventually(dataPlanesOf(ns)).Should(HaveKeyWithValue("api-gateway", Equal([]string{"traefik"})))
	})

	t.Run("reads the default class's controller for an Ingress that names no class", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		def := class("default-"+ns, traefikByFlag)
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
