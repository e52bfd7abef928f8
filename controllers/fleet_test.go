package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/shed"
)

// fleetIngress is an Ingress of its own host and upstream, labelled.
func fleetIngress(ns, name string, labels map[string]string) *networkingv1.Ingress {
	ing := sampleIngress(ns)
	ing.Name, ing.Labels = name, labels
	ing.Annotations = nil
	ing.Spec.Rules[0].Host = name + ".example.com"
	paths := ing.Spec.Rules[0].HTTP.Paths[:1]
	paths[0].Backend = backend(name, 80)
	ing.Spec.Rules[0].HTTP.Paths = paths
	return ing
}

// passesOf reads floodgate_policy_passes_total of a policy from the manager's registry.
func passesOf(t testing.TB, ns, name string) float64 {
	g := NewWithT(t)
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != "floodgate_policy_passes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["policy"] == name {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestAPolicyOverAFleetTargetSelector(t *testing.T) {
	t.Run("sheds every Ingress it selects, takes in one labelled later, lets go of one unlabelled, never selects a canary, and lists a fleet in status without outgrowing it", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		edge := map[string]string{"tier": "edge"}
		const fleet = pass.MaxListedTargets + 2
		for i := range fleet {
			create(t, fleetIngress(ns, fmt.Sprintf("edge-%02d", i), edge))
		}
		create(t, fleetIngress(ns, "internal", map[string]string{"tier": "internal"}))
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Name = "edge"
		policy.Spec.TargetRefs, policy.Spec.AutoscalerRefs = nil, nil
		policy.Spec.TargetSelector = &v1alpha1.TargetSelector{MatchLabels: edge}
		create(t, policy)

		canaryOf := func(target string) func() *networkingv1.Ingress {
			return func() *networkingv1.Ingress { return getIngress(ns, target+"-floodgate-edge") }
		}
		for i := range fleet {
			g.Eventually(canaryOf(fmt.Sprintf("edge-%02d", i))).ShouldNot(BeNil())
		}
		g.Eventually(func() []int32 {
			st := getPolicy(t, ns, "edge").Status
			return []int32{st.TargetCount, int32(len(st.Targets)), st.TargetsNotListed}
		}).Should(Equal([]int32{fleet, pass.MaxListedTargets, 2}), "counts, the first names, how many are not listed")
		g.Expect(getPolicy(t, ns, "edge").Status.Phase).To(Equal(v1alpha1.PhaseShedding))
		g.Expect(canaryOf("internal")()).To(BeNil(), "an Ingress the selector does not select is left alone")

		t.Log("a canary given the selected label by hand is still never a target")
		canary := getIngress(ns, "edge-01-floodgate-edge")
		labelled := canary.DeepCopy()
		labelled.Labels["tier"] = "edge"
		g.Expect(k8s.Patch(context.Background(), labelled, client.MergeFrom(canary))).To(Succeed())
		g.Consistently(func() int32 { return getPolicy(t, ns, "edge").Status.TargetCount }, "1s").Should(BeEquivalentTo(fleet))
		g.Expect(canaryOf("edge-01-floodgate-edge")()).To(BeNil())

		t.Log("the shed server's table takes the policy's answer for every selected Ingress, and for no canary")
		selected, err := shed.TargetObjects(context.Background(), k8s, getPolicy(t, ns, "edge"), &ingressnginx.Provider{})
		g.Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, ing := range selected {
			names = append(names, ing.GetName())
		}
		g.Expect(names).To(HaveLen(fleet))
		g.Expect(names).To(HaveEach(HavePrefix("edge-")))
		g.Expect(names).NotTo(ContainElement(ContainSubstring("floodgate")))

		t.Log("an Ingress labelled later is shed too")
		create(t, fleetIngress(ns, "edge-new", edge))
		g.Eventually(canaryOf("edge-new")).ShouldNot(BeNil())

		t.Log("an Ingress whose label is removed loses its canary")
		ing := getIngress(ns, "edge-00")
		before := ing.DeepCopy()
		ing.Labels = nil
		g.Expect(k8s.Patch(context.Background(), ing, client.MergeFrom(before))).To(Succeed())
		g.Eventually(canaryOf("edge-00")).Should(BeNil())
		g.Eventually(func() int32 { return getPolicy(t, ns, "edge").Status.TargetCount }).Should(BeEquivalentTo(fleet))

		t.Log("Normal: every canary goes")
		setAction(t, ns, "edge", v1alpha1.ActionNormal)
		for i := range fleet {
			g.Eventually(canaryOf(fmt.Sprintf("edge-%02d", i))).Should(BeNil())
		}
		g.Eventually(canaryOf("edge-new")).Should(BeNil())
	})
}

func TestAWatchedChange(t *testing.T) {
	t.Run("wakes only the policies it concerns: not those of unrelated Ingresses in the namespace", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		const policies = 4
		for i := range policies {
			name := fmt.Sprintf("svc-%d", i)
			create(t, fleetIngress(ns, name, nil))
			p := samplePolicy(ns, v1alpha1.ActionShedAll)
			p.Name = name
			p.Spec.TargetRefs, p.Spec.AutoscalerRefs = []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: name}}, nil
			create(t, p)
		}
		create(t, fleetIngress(ns, "unrelated", nil))
		for i := range policies {
			g.Eventually(phaseOf(t, ns, fmt.Sprintf("svc-%d", i))).Should(Equal(v1alpha1.PhaseShedding))
		}
		passes := func() []float64 {
			var out []float64
			for i := range policies {
				out = append(out, passesOf(t, ns, fmt.Sprintf("svc-%d", i)))
			}
			return out
		}
		// At rest: nothing requeues these policies (ShedAll has no timer), once their first passes
		// are over: no pass for a second.
		var last []float64
		g.Eventually(func() bool {
			now := passes()
			settled := slices.Equal(now, last)
			last = now
			return settled
		}).WithPolling(time.Second).Should(BeTrue())
		atRest := passes()

		t.Log("an unrelated Ingress is changed five times: no policy runs")
		for i := range 5 {
			ing := getIngress(ns, "unrelated")
			before := ing.DeepCopy()
			ing.Annotations = map[string]string{"touched": fmt.Sprint(i)}
			g.Expect(k8s.Patch(context.Background(), ing, client.MergeFrom(before))).To(Succeed())
		}
		g.Consistently(passes, "2s").Should(Equal(atRest))

		t.Log("a status-only update of a target (its load balancer's address) wakes no policy")
		target := getIngress(ns, "svc-1")
		target.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.1"}}
		g.Expect(k8s.Status().Update(context.Background(), target)).To(Succeed())
		g.Consistently(passes, "1s").Should(Equal(atRest))

		t.Log("an Ingress starting to share svc-2's upstream wakes svc-2 alone")
		ing := getIngress(ns, "unrelated")
		before := ing.DeepCopy()
		ing.Spec.Rules[0].HTTP.Paths[0].Backend = backend("svc-2", 80)
		g.Expect(k8s.Patch(context.Background(), ing, client.MergeFrom(before))).To(Succeed())
		g.Eventually(func() []string { return getPolicy(t, ns, "svc-2").Status.Targets[0].SharedUpstreamIngresses }).Should(Equal([]string{"unrelated"}))
		g.Expect(passes()[2]).To(BeNumerically(">", atRest[2]))
		g.Consistently(func() []float64 { p := passes(); p[2] = atRest[2]; return p }, "1s").Should(Equal(atRest))
	})
}
