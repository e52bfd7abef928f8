package controllers_test

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/test/fixtures"
)

// Armed: the API server, not Floodgate's own checks, judges every lever before the incident.
func TestArmedLeversJudgedByTheAPIServerAtRest(t *testing.T) {

	t.Run("arms the sample policy: every lever accepted for its target and autoscaler, each marked armed", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		create(t, sampleIngress(ns), sampleDeployment(ns, 4), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionNormal))
		g.Eventually(conditionOfPolicy(t, ns, "api-gateway", v1alpha1.ConditionArmed)).Should(Equal("True " + v1alpha1.ReasonLeversAccepted +
			": the API server accepts, in a dry run, every lever (ShedAll, step 1, step 2, step 3, Normal) for 1 target and 1 autoscaler"))
		p := getPolicy(t, ns, "api-gateway")
		g.Expect(meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionArmed).ObservedGeneration).To(Equal(p.Generation))
		g.Expect(p.Status.Targets).To(ConsistOf(HaveField("Armed", Equal(ptr.To(true)))))
		g.Expect(p.Status.Autoscalers).To(ConsistOf(HaveField("Armed", Equal(ptr.To(true)))))
		t.Log("nothing was persisted: the Ingress has no record, no canary or shed Service exists")
		g.Expect(getIngress(ns, "api-gateway").Annotations).NotTo(HaveKey(HavePrefix("traffic.floodgate.dev/")))
		g.Expect(getIngress(ns, canaryName)).To(BeNil())
	})

	t.Run("says Armed False, with the API server's message, for a step an admission policy refuses, before the lever is pulled; the other levers still work", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		// An input Floodgate's own checks cannot know about: the cluster's own admission policy
		// caps the per-client limit an Ingress may be given at 100 requests/s.
		create(t, sampleIngress(ns))
		capRate(t, ns)
		create(t, sampleDeployment(ns, 4), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionNormal))
		g.Eventually(conditionOfPolicy(t, ns, "api-gateway", v1alpha1.ConditionArmed)).Should(And(
			HavePrefix("False "+v1alpha1.ReasonLeverRefused+": the API server refuses, in a dry run, step 2 on Ingress api-gateway: "),
			ContainSubstring("per-client limits above 100 requests/s are not allowed in this cluster")))
		p := getPolicy(t, ns, "api-gateway")
		g.Expect(p.Status.Targets).To(ConsistOf(HaveField("Armed", Equal(ptr.To(false)))))
		g.Expect(p.Status.Autoscalers).To(ConsistOf(HaveField("Armed", Equal(ptr.To(true)))))
		g.Expect(conditionOfPolicy(t, ns, "api-gateway", v1alpha1.ConditionStepUnsupported)()).To(HavePrefix("False "), "Floodgate's own checks see nothing wrong")
		g.Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("1000"), "nothing was written")

		t.Log("the lever is still pulled: ShedAll sheds")
		setAction(t, ns, "api-gateway", v1alpha1.ActionShedAll)
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
	})

	t.Run("arms and sheds a policy whose name is 70 characters (its label and Service names fit their limits)", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		name := strings.Repeat("a", 60) + "-gateway.x"
		ing := sampleIngress(ns)
		policy := samplePolicy(ns, v1alpha1.ActionNormal)
		policy.Name, policy.Spec.AutoscalerRefs = name, nil
		create(t, ing, policy)
		g.Eventually(conditionOfPolicy(t, ns, name, v1alpha1.ConditionArmed)).Should(Equal("True " + v1alpha1.ReasonLeversAccepted +
			": the API server accepts, in a dry run, every lever (ShedAll, step 1, step 2, step 3, Normal) for 1 target and 0 autoscalers"))
		setAction(t, ns, name, v1alpha1.ActionShedAll)
		g.Eventually(phaseOf(t, ns, name)).Should(Equal(v1alpha1.PhaseShedding))
		g.Eventually(conditionOfPolicy(t, ns, name, v1alpha1.ConditionReady)).Should(HavePrefix("True "))
		svc := &corev1.Service{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: shed.CompanionServiceName(name)}, svc)).To(Succeed())
		g.Expect(len(svc.Name)).To(BeNumerically("<=", 63))
	})

	t.Run("sheds both of two policies named a.b and a-b in one namespace: each has a shed Service of its own", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		first, second := ingressWithHost(ns, "first", "first.example.com"), ingressWithHost(ns, "second", "second.example.com")
		for _, p := range []struct{ policy, target string }{{"a.b", "first"}, {"a-b", "second"}} {
			policy := samplePolicy(ns, v1alpha1.ActionShedAll)
			policy.Name, policy.Spec.AutoscalerRefs = p.policy, nil
			policy.Spec.TargetRefs = []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: p.target}}
			create(t, policy)
		}
		create(t, first, second)
		for _, name := range []string{"a.b", "a-b"} {
			g.Eventually(conditionOfPolicy(t, ns, name, v1alpha1.ConditionReady)).Should(HavePrefix("True "), name)
			g.Eventually(phaseOf(t, ns, name)).Should(Equal(v1alpha1.PhaseShedding), name)
		}
		g.Expect(shed.CompanionServiceName("a.b")).NotTo(Equal(shed.CompanionServiceName("a-b")))
	})

	t.Run("with a targetSelector that cannot be read at run time: the named target is still shed, status says why, and deleting the policy restores and lets it go", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		ing := sampleIngress(ns)
		create(t, ing)
		before := viewOf(t, ing)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		// A label value the CRD lets through and apimachinery refuses.
		policy.Spec.TargetSelector = &v1alpha1.TargetSelector{MatchLabels: map[string]string{"tier": "not a label value"}}
		create(t, policy)
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(And(HavePrefix("True "+v1alpha1.ReasonUnsupported+": targetSelector selects nothing until it is fixed: "),
			HaveSuffix("; the named targets take the lever")))

		t.Log("deleting the policy: the target gets its original back and the finalizer goes")
		g.Expect(k8s.Delete(ctx, getPolicy(t, ns, "api-gateway"))).To(Succeed())
		g.Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api-gateway"}, &v1alpha1.TrafficPolicy{})
		}).Should(MatchError(ContainSubstring("not found")))
		g.Expect(viewOf(t, ing)).To(Equal(before))
		g.Expect(getIngress(ns, canaryName)).To(BeNil())
	})
}

// capRate installs, for the namespace, a ValidatingAdmissionPolicy (the API server's own CEL
// admission) that refuses an Ingress given a limit-rps annotation above 100 (one it already has
// may stay).
func capRate(t testing.TB, ns string) {
	g := NewWithT(t)
	name := "cap-rate-" + ns
	vap := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"networking.k8s.io"}, APIVersions: []string{"v1"},
						Resources: []string{"ingresses"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!has(object.metadata.annotations) || !('nginx.ingress.kubernetes.io/limit-rps' in object.metadata.annotations) || " +
					"int(object.metadata.annotations['nginx.ingress.kubernetes.io/limit-rps']) <= 100 || " +
					"(oldObject != null && has(oldObject.metadata.annotations) && 'nginx.ingress.kubernetes.io/limit-rps' in oldObject.metadata.annotations && " +
					"oldObject.metadata.annotations['nginx.ingress.kubernetes.io/limit-rps'] == object.metadata.annotations['nginx.ingress.kubernetes.io/limit-rps'])",
				Message: "per-client limits above 100 requests/s are not allowed in this cluster",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
		},
	}
	create(t, vap, binding)
	t.Cleanup(func() {
		g.Expect(client.IgnoreNotFound(k8s.Delete(context.Background(), binding))).To(Succeed())
		g.Expect(client.IgnoreNotFound(k8s.Delete(context.Background(), vap))).To(Succeed())
	})
	// The API server enforces a new policy once its informers have it: wait until it refuses.
	g.Eventually(func() error {
		probe := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns,
			Annotations: map[string]string{"nginx.ingress.kubernetes.io/limit-rps": "500"}},
			Spec: networkingv1.IngressSpec{DefaultBackend: ptr.To(backend("api", 80))}}
		return k8s.Create(context.Background(), probe, client.DryRunAll)
	}).Should(MatchError(ContainSubstring("not allowed in this cluster")))
}

func conditionOfPolicy(t testing.TB, ns, name, typ string) func() string {
	return func() string { return fixtures.Condition(getPolicy(t, ns, name), typ) }
}
