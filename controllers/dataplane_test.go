package controllers_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/test/fixtures"
)

// Data-plane safety: what Floodgate writes never takes the ingress controller down, and a lever
// that cannot work says so instead of looking applied.
func TestTheDataPlane(t *testing.T) {
	t.Run("never gets a canary rule without paths: a host-only rule of the target is left out and reported", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		ingress := sampleIngress(ns)
		ingress.Spec.Rules = append(ingress.Spec.Rules, networkingv1.IngressRule{Host: "bare.example.com"})
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		create(t, ingress, policy)

		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		canary := getIngress(ns, canaryName)
		g.Expect(canary.Spec.Rules).To(HaveLen(1))
		g.Expect(canary.Spec.Rules[0].Host).To(Equal("api.example.com"))
		g.Expect(canary.Spec.Rules[0].HTTP).NotTo(BeNil())
		g.Eventually(func() string {
			targets := getPolicy(t, ns, "api-gateway").Status.Targets // written after the canary: awaited on its own
			if len(targets) == 0 {
				return ""
			}
			return strings.Join(targets[0].Warnings, "\n")
		}).Should(
			ContainSubstring(`the rule for host "bare.example.com" has no paths: its traffic (the default backend's) is not covered by the canary, so it is never shed`))
	})

	t.Run("reports a ShedAll whose shed pods are not ready as not shedding, and Ready once they are", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		setShedPodsReady(t, false)
		t.Cleanup(func() { setShedPodsReady(t, true) })
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		create(t, sampleIngress(ns), policy)

		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("False " + v1alpha1.ReasonNoShedBackend +
			": not shedding: the shed backend has no ready endpoints, and ingress-nginx (and Traefik's NGINX provider) skips a canary whose backend has none"))
		g.Expect(conditionOf(t, ns, v1alpha1.ConditionDegraded)()).To(HavePrefix("True " + v1alpha1.ReasonNoShedBackend))

		setShedPodsReady(t, true)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("True " + v1alpha1.ReasonApplied))
	})

	// Under ShedAll, it follows the shed pods: the companion mirrors their conditions exactly and
	// status says the shed cannot be answered.
	for _, fault := range fixtures.ShedPodFaults() {
		t.Run("under ShedAll, the companion follows the shed pods "+fault.Name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			policy := samplePolicy(ns, v1alpha1.ActionShedAll)
			policy.Spec.AutoscalerRefs = nil
			create(t, sampleIngress(ns), policy)
			g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("True " + v1alpha1.ReasonApplied))

			restore, err := fixtures.SetShedPods(ctx, k8s, fault.Endpoints)
			g.Expect(err).NotTo(HaveOccurred())
			t.Cleanup(func() { _ = restore() })
			g.Eventually(companionEndpoints(ns, shed.CompanionServiceName(policy.Name))).Should(ConsistOf(fault.Endpoints))
			g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("False " + v1alpha1.ReasonNoShedBackend + ": not shedding"))
			if fault.Draining > 0 {
				g.Expect(conditionOf(t, ns, v1alpha1.ConditionReady)()).To(ContainSubstring("1 terminating shed endpoint(s) still serve"))
			}
			g.Expect(conditionOf(t, ns, v1alpha1.ConditionDegraded)()).To(HavePrefix("True " + v1alpha1.ReasonNoShedBackend))

			g.Expect(restore()).To(Succeed())
			g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("True " + v1alpha1.ReasonApplied))
		})
	}
}

// companionEndpoints reads the endpoints of a policy's shed companion EndpointSlice.
func companionEndpoints(ns, name string) func() []discoveryv1.Endpoint {
	return func() []discoveryv1.Endpoint {
		slice := &discoveryv1.EndpointSlice{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, slice); err != nil {
			return nil
		}
		return slice.Endpoints
	}
}

// setShedPodsReady marks the stand-in shed pods ready or not, as the EndpointSlice controller would.
func setShedPodsReady(t testing.TB, ready bool) {
	g := NewWithT(t)
	slice := &discoveryv1.EndpointSlice{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: manager.DefaultShed.Namespace, Name: drill.ShedPodsSlice}, slice)).To(Succeed())
	patch := client.MergeFrom(slice.DeepCopy())
	for i := range slice.Endpoints {
		slice.Endpoints[i].Conditions.Ready = ptr.To(ready)
	}
	g.Expect(k8s.Patch(ctx, slice, patch)).To(Succeed())
}
