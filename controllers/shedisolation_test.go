package controllers_test

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/test/fixtures"
)

// startShedServer runs the real shed server until the spec ends, and returns how to ask it.
func startShedServer(t testing.TB, redirectHosts shed.RedirectHosts) func(host, path string) fixtures.ShedAnswer {
	g := NewWithT(t)
	syncCtx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	ask, err := fixtures.StartShedServer(syncCtx, cp.Config, redirectHosts)
	g.Expect(err).NotTo(HaveOccurred())
	return func(host, path string) fixtures.ShedAnswer {
		a, err := ask(host, path)
		g.Expect(err).NotTo(HaveOccurred())
		return a
	}
}

// An attacker namespace, with only a policy left at Normal over an Ingress of its own, never
// chooses the shed answer for a victim's requests, by any host form and in
// either order of creation: the overlap gets the neutral answer, and both policies report the
// Conflict naming the other.
func TestIsolationOfTheShedAnswer(t *testing.T) {
	type form struct {
		attackerHost string // "" : a catch-all (the Ingress's default backend)
		attackerPath string
		request      string // the victim's host as a client sends it
	}
	forms := []struct {
		name string
		form
	}{
		{"the same exact host", form{"api.VICTIM.test", "/", "api.VICTIM.test"}},
		{"a wildcard covering the victim's host, at the same path", form{"*.VICTIM.test", "/", "api.VICTIM.test"}},
		{"a wildcard covering the victim's host, at a longer path", form{"*.VICTIM.test", "/v2", "api.VICTIM.test"}},
		{"a catch-all", form{"", "/", "api.VICTIM.test"}},
		{"a trailing dot on the victim's host, falling to a catch-all", form{"", "/", "api.VICTIM.test."}},
	}
	for _, by := range forms {
		for _, attackerFirst := range []bool{false, true} {
			order := ", the victim first"
			if attackerFirst {
				order = ", the attacker first"
			}
			t.Run("by "+by.name+order, func(t *testing.T) {
				g := NewWithT(t)
				f := by.form
				victimNS, attackerNS := newNamespace(t), newNamespace(t)
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

				get := startShedServer(t, nil)
				if attackerFirst {
					create(t, bait, attacker)
					create(t, victimIngress, victim)
				} else {
					create(t, victimIngress, victim)
					create(t, bait, attacker)
				}
				request := strings.ReplaceAll(f.request, "VICTIM", victimNS)
				for _, path := range []string{"/", "/v2/users/1"} {
					g.Eventually(func() fixtures.ShedAnswer { return get(request, path) }).Should(And(HaveField("Code", 503), HaveField("RetryAfter", "120")),
						"%s%s must get the neutral answer", request, path)
				}
				g.Eventually(conditionOfPolicy(t, victimNS, "api-gateway", v1alpha1.ConditionDegraded)).Should(
					And(HavePrefix("True "+v1alpha1.ReasonConflict+": route "), ContainSubstring("is also claimed by policy "+attackerNS+"/steer of another namespace")))
				g.Eventually(conditionOfPolicy(t, attackerNS, "steer", v1alpha1.ConditionDegraded)).Should(
					ContainSubstring("is also claimed by policy " + victimNS + "/api-gateway of another namespace"))
			})
		}
	}

	t.Run("takes no claim from an Ingress of a class that does not exist, until the class appears", func(t *testing.T) {
		g := NewWithT(t)
		victimNS, attackerNS := newNamespace(t), newNamespace(t)
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

		get := startShedServer(t, nil)
		create(t, bait, attacker, ingressWithHost(victimNS, "api-gateway", victimHost), victim)
		g.Eventually(func() int { return get(victimHost, "/").Code }).Should(Equal(429), "the victim's own answer")
		g.Eventually(conditionOfPolicy(t, victimNS, "api-gateway", v1alpha1.ConditionReady)).Should(HavePrefix("True"))
		g.Consistently(func() int { return get(victimHost, "/").Code }, "1s").Should(Equal(429), "an Ingress nobody serves chooses nobody's answer")
		g.Expect(conditionOfPolicy(t, victimNS, "api-gateway", v1alpha1.ConditionDegraded)()).NotTo(ContainSubstring(v1alpha1.ReasonConflict))
		g.Expect(conditionOfPolicy(t, attackerNS, "steer", v1alpha1.ConditionDegraded)()).NotTo(ContainSubstring(v1alpha1.ReasonConflict))

		t.Log("the class is created: the Ingress carries traffic, and the overlap is neutralized and told")
		create(t, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: class}, Spec: networkingv1.IngressClassSpec{Controller: "example.com/other"}})
		g.Eventually(func() fixtures.ShedAnswer { return get(victimHost, "/") }).Should(And(HaveField("Code", 503), HaveField("RetryAfter", "120")))
		g.Eventually(conditionOfPolicy(t, victimNS, "api-gateway", v1alpha1.ConditionDegraded)).Should(
			ContainSubstring("is also claimed by policy " + attackerNS + "/steer of another namespace"))
	})
}
