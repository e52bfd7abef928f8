package controllers_test

import (
	"context"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/test/fixtures"
)

// startShedServer runs the real shed server until the spec ends, and returns how to ask it.
func startShedServer(redirectHosts shed.RedirectHosts) func(host, path string) fixtures.ShedAnswer {
	syncCtx, stop := context.WithCancel(ctx)
	DeferCleanup(stop)
	ask, err := fixtures.StartShedServer(syncCtx, cp.Config, redirectHosts)
	Expect(err).NotTo(HaveOccurred())
	return func(host, path string) fixtures.ShedAnswer {
		a, err := ask(host, path)
		Expect(err).NotTo(HaveOccurred())
		return a
	}
}

// An attacker namespace, with only a policy left at Normal over an Ingress of its own, never
// chooses the shed answer for a victim's requests, by any host form and in
// either order of creation: the overlap gets the neutral answer, and both policies report the
// Conflict naming the other.
var _ = Describe("isolation of the shed answer", func() {
	type form struct {
		attackerHost string // "" : a catch-all (the Ingress's default backend)
		attackerPath string
		request      string // the victim's host as a client sends it
	}
	DescribeTable("by every host form",
		func(f form, attackerFirst bool) {
			victimNS, attackerNS := newNamespace(), newNamespace()
			victimHost := "api." + victimNS + ".test"
			victimIngress := ingressWithHost(victimNS, "api-gateway", victimHost)
			victim := samplePolicy(victimNS, v1alpha1.ActionShedAll)
			victim.Spec.AutoscalerRefs = nil
			victim.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](30)}

			attackerHost := strings.ReplaceAll(f.attackerHost, "VICTIM", victimNS)
			bait := ingressWithHost(attackerNS, "bait", attackerHost)
			bait.Spec.Rules[0].HTTP.Paths = bait.Spec.Rules[0].HTTP.Paths[:1]
			bait.Spec.Rules[0].HTTP.Paths[0].Path = f.attackerPath
			if attackerHost == "" {
				bait.Spec.Rules = nil
				bait.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "x", Port: networkingv1.ServiceBackendPort{Number: 80}}}
			}
			attacker := samplePolicy(attackerNS, v1alpha1.ActionNormal)
			attacker.Name, attacker.Spec.AutoscalerRefs = "steer", nil
			attacker.Spec.TargetRefs = []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "bait"}}
			attacker.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](418), RetryAfterSeconds: ptr.To[int32](1)}

			get := startShedServer(nil)
			if attackerFirst {
				create(bait, attacker)
				create(victimIngress, victim)
			} else {
				create(victimIngress, victim)
				create(bait, attacker)
			}
			request := strings.ReplaceAll(f.request, "VICTIM", victimNS)
			for _, path := range []string{"/", "/v2/users/1"} {
				Eventually(func() fixtures.ShedAnswer { return get(request, path) }).Should(And(HaveField("Code", 503), HaveField("RetryAfter", "120")),
					"%s%s must get the neutral answer", request, path)
			}
			Eventually(conditionOfPolicy(victimNS, "api-gateway", v1alpha1.ConditionDegraded)).Should(
				And(HavePrefix("True "+v1alpha1.ReasonConflict+": route "), ContainSubstring("is also claimed by policy "+attackerNS+"/steer of another namespace")))
			Eventually(conditionOfPolicy(attackerNS, "steer", v1alpha1.ConditionDegraded)).Should(
				ContainSubstring("is also claimed by policy " + victimNS + "/api-gateway of another namespace"))
		},
		func() []TableEntry {
			var entries []TableEntry
			for name, f := range map[string]form{
				"the same exact host": {"api.VICTIM.test", "/", "api.VICTIM.test"},
				"a wildcard covering the victim's host, at the same path": {"*.VICTIM.test", "/", "api.VICTIM.test"},
				"a wildcard covering the victim's host, at a longer path": {"*.VICTIM.test", "/v2", "api.VICTIM.test"},
				"a catch-all": {"", "/", "api.VICTIM.test"},
				"a trailing dot on the victim's host, falling to a catch-all": {"", "/", "api.VICTIM.test."},
			} {
				entries = append(entries, Entry(name+", the victim first", f, false), Entry(name+", the attacker first", f, true))
			}
			return entries
		}(),
	)

	It("takes no claim from an Ingress of a class that does not exist, until the class appears", func() {
		victimNS, attackerNS := newNamespace(), newNamespace()
		victimHost := "api." + victimNS + ".test"
		victim := samplePolicy(victimNS, v1alpha1.ActionShedAll)
		victim.Spec.AutoscalerRefs = nil
		victim.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](30)}
		class := "ghost-" + attackerNS
		bait := ingressWithHost(attackerNS, "bait", victimHost)
		bait.Spec.IngressClassName = &class
		attacker := samplePolicy(attackerNS, v1alpha1.ActionNormal)
		attacker.Name, attacker.Spec.AutoscalerRefs = "steer", nil
		attacker.Spec.TargetRefs = []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "bait"}}
		attacker.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](418), RetryAfterSeconds: ptr.To[int32](1)}

		get := startShedServer(nil)
		create(bait, attacker, ingressWithHost(victimNS, "api-gateway", victimHost), victim)
		Eventually(func() int { return get(victimHost, "/").Code }).Should(Equal(429), "the victim's own answer")
		Eventually(conditionOfPolicy(victimNS, "api-gateway", v1alpha1.ConditionReady)).Should(HavePrefix("True"))
		Consistently(func() int { return get(victimHost, "/").Code }, "1s").Should(Equal(429), "an Ingress nobody serves chooses nobody's answer")
		Expect(conditionOfPolicy(victimNS, "api-gateway", v1alpha1.ConditionDegraded)()).NotTo(ContainSubstring(v1alpha1.ReasonConflict))
		Expect(conditionOfPolicy(attackerNS, "steer", v1alpha1.ConditionDegraded)()).NotTo(ContainSubstring(v1alpha1.ReasonConflict))

		By("the class is created: the Ingress carries traffic, and the overlap is neutralized and told")
		create(&networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: class}, Spec: networkingv1.IngressClassSpec{Controller: "example.com/other"}})
		Eventually(func() fixtures.ShedAnswer { return get(victimHost, "/") }).Should(And(HaveField("Code", 503), HaveField("RetryAfter", "120")))
		Eventually(conditionOfPolicy(victimNS, "api-gateway", v1alpha1.ConditionDegraded)).Should(
			ContainSubstring("is also claimed by policy " + attackerNS + "/steer of another namespace"))
	})
})
