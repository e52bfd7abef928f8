package controllers_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/test/fixtures"
)

// Data-plane safety: what Floodgate writes never takes the ingress controller down, and a lever
// that cannot work says so instead of looking applied.
var _ = Describe("the data plane", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("never gets a canary rule without paths: a host-only rule of the target is left out and reported", func() {
		ingress := sampleIngress(ns)
		ingress.Spec.Rules = append(ingress.Spec.Rules, networkingv1.IngressRule{Host: "bare.example.com"})
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		create(ingress, policy)

		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		canary := getIngress(ns, canaryName)
		Expect(canary.Spec.Rules).To(HaveLen(1))
		Expect(canary.Spec.Rules[0].Host).To(Equal("api.example.com"))
		Expect(canary.Spec.Rules[0].HTTP).NotTo(BeNil())
		Eventually(func() string {
			targets := getPolicy(ns, "api-gateway").Status.Targets // written after the canary: awaited on its own
			if len(targets) == 0 {
				return ""
			}
			return strings.Join(targets[0].Warnings, "\n")
		}).Should(
			ContainSubstring(`the rule for host "bare.example.com" has no paths: its traffic (the default backend's) is not covered by the canary, so it is never shed`))
	})

	It("reports a ShedAll whose shed pods are not ready as not shedding, and Ready once they are", func() {
		setShedPodsReady(false)
		DeferCleanup(setShedPodsReady, true)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		create(sampleIngress(ns), policy)

		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		Eventually(conditionOf(ns, v1alpha1.ConditionReady)).Should(HavePrefix("False " + v1alpha1.ReasonNoShedBackend +
			": not shedding: the shed backend has no ready endpoints, and ingress-nginx skips a canary whose backend has none"))
		Expect(conditionOf(ns, v1alpha1.ConditionDegraded)()).To(HavePrefix("True " + v1alpha1.ReasonNoShedBackend))

		setShedPodsReady(true)
		Eventually(conditionOf(ns, v1alpha1.ConditionReady)).Should(HavePrefix("True " + v1alpha1.ReasonApplied))
	})

	DescribeTable("under ShedAll, follows the shed pods: the companion mirrors their conditions exactly and status says the shed cannot be answered",
		func(fault fixtures.ShedPodFault) {
			policy := samplePolicy(ns, v1alpha1.ActionShedAll)
			policy.Spec.AutoscalerRefs = nil
			create(sampleIngress(ns), policy)
			Eventually(conditionOf(ns, v1alpha1.ConditionReady)).Should(HavePrefix("True " + v1alpha1.ReasonApplied))

			restore, err := fixtures.SetShedPods(ctx, k8s, fault.Endpoints)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(restore)
			Eventually(companionEndpoints(ns, shed.CompanionServiceName(policy.Name))).Should(ConsistOf(fault.Endpoints))
			Eventually(conditionOf(ns, v1alpha1.ConditionReady)).Should(HavePrefix("False " + v1alpha1.ReasonNoShedBackend + ": not shedding"))
			if fault.Draining > 0 {
				Expect(conditionOf(ns, v1alpha1.ConditionReady)()).To(ContainSubstring("1 terminating shed endpoint(s) still serve"))
			}
			Expect(conditionOf(ns, v1alpha1.ConditionDegraded)()).To(HavePrefix("True " + v1alpha1.ReasonNoShedBackend))

			Expect(restore()).To(Succeed())
			Eventually(conditionOf(ns, v1alpha1.ConditionReady)).Should(HavePrefix("True " + v1alpha1.ReasonApplied))
		},
		func() []TableEntry {
			var entries []TableEntry
			for _, f := range fixtures.ShedPodFaults() {
				entries = append(entries, Entry("the shed pods "+f.Name, f))
			}
			return entries
		}(),
	)
})

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
func setShedPodsReady(ready bool) {
	slice := &discoveryv1.EndpointSlice{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: manager.DefaultShed.Namespace, Name: "floodgate-shed-abc"}, slice)).To(Succeed())
	patch := client.MergeFrom(slice.DeepCopy())
	for i := range slice.Endpoints {
		slice.Endpoints[i].Conditions.Ready = ptr.To(ready)
	}
	Expect(k8s.Patch(ctx, slice, patch)).To(Succeed())
}
