package controllers_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// setAvailable writes a Deployment's status as its controller would (envtest runs none).
func setAvailable(t testing.TB, ns string, available int32) {
	g := NewWithT(t)
	d := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api-gateway"}, d)).To(Succeed())
	d.Status.ObservedGeneration = d.Generation
	d.Status.Replicas, d.Status.AvailableReplicas, d.Status.ReadyReplicas = *d.Spec.Replicas, available, available
	g.Expect(k8s.Status().Update(ctx, d)).To(Succeed())
}

func gate(t testing.TB, ns, name string) func() v1alpha1.GateStatus {
	return func() v1alpha1.GateStatus {
		p := getPolicy(t, ns, "api-gateway")
		if p.Status.Ramp != nil {
			for _, g := range p.Status.Ramp.Gates {
				if g.Name == name {
					return g
				}
			}
		}
		return v1alpha1.GateStatus{}
	}
}

// conditionOf is the condition typ of the sample policy, as "STATUS Reason: message".
func conditionOf(t testing.TB, ns, typ string) func() string {
	return conditionOfPolicy(t, ns, "api-gateway", typ)
}

func TestARampThatAdvancesOnEvidence(t *testing.T) {
	t.Run("moves on only when the fleet is ready and the webhook agrees, for passFor, and holds on a silent webhook", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		var answer atomic.Int32
		answer.Store(http.StatusServiceUnavailable)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(answer.Load())) }))
		t.Cleanup(hook.Close)

		policy := samplePolicy(ns, v1alpha1.ActionRamp)
		policy.Spec.Ramp.Gate = v1alpha1.GateSettings{PassFor: &metav1.Duration{Duration: time.Minute}, Interval: &metav1.Duration{Duration: 10 * time.Second}}
		policy.Spec.Ramp.Steps[0].Gates = []v1alpha1.Gate{
			{Name: "fleet-ready", WorkloadReady: &v1alpha1.WorkloadReadyGate{Name: "api-gateway", MinAvailablePercent: 100}},
			{Name: "confirm", Webhook: &v1alpha1.WebhookGate{URL: hook.URL + "/confirm"}},
		}
		create(t, sampleIngress(ns), sampleDeployment(ns, 4), sampleHPA(ns, nil), policy)
		setAvailable(t, ns, 2)

		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		g.Eventually(gate(t, ns, "fleet-ready")).Should(And(
			HaveField("Verdict", v1alpha1.VerdictFail), HaveField("Reading", "2/4 available (need 100%)")))
		// The webhook is read apart from the reconcile pass: its reading arrives on its own.
		g.Eventually(gate(t, ns, "confirm")).Should(HaveField("Reading", "HTTP 503"))

		t.Log("the hold is over but the gates fail: the step stays")
		clk.Advance(6 * time.Minute)
		g.Consistently(progressOf(t, ns, "api-gateway"), "300ms").Should(Equal("Ramping 1/3"))

		t.Log("both pass: the step still waits passFor")
		setAvailable(t, ns, 4)
		answer.Store(http.StatusOK)
		clk.Advance(10 * time.Second)
		g.Eventually(gate(t, ns, "confirm")).Should(HaveField("Verdict", v1alpha1.VerdictPass))
		g.Eventually(gate(t, ns, "fleet-ready")).Should(HaveField("Verdict", v1alpha1.VerdictPass))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Progress).To(Equal("1/3"))

		t.Log("the webhook goes silent mid-streak: Unknown holds, with a named reason and an Event")
		hook.Close()
		clk.Advance(30 * time.Second)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionGateUnknown)).Should(HavePrefix("True GatesHolding: the ramp holds: gate confirm: calling webhook"))
		g.Eventually(func() []string { return eventReasons(t, ns) }).Should(ContainElement(v1alpha1.ReasonGatesHolding))
		clk.Advance(5 * time.Minute)
		g.Consistently(progressOf(t, ns, "api-gateway"), "300ms").Should(Equal("Ramping 1/3"))

		t.Log("the webhook answers again: after passFor of passing, step 2")
		hook2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
		hook2.Listener.Close()
		hook2.Listener = mustListen(t, hook.Listener.Addr().String())
		hook2.Start()
		t.Cleanup(hook2.Close)
		clk.Advance(10 * time.Second)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionGateUnknown)).Should(HavePrefix("False"))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Progress).To(Equal("1/3"))
		clk.Advance(time.Minute)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 2/3"))
	})

	t.Run("keeps a gate's passing streak across an operator restart", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionRamp)
		policy.Spec.Ramp.Gate = v1alpha1.GateSettings{PassFor: &metav1.Duration{Duration: 10 * time.Minute}, Interval: &metav1.Duration{Duration: 10 * time.Second}}
		policy.Spec.Ramp.Steps[0].Gates = []v1alpha1.Gate{{Name: "fleet-ready", WorkloadReady: &v1alpha1.WorkloadReadyGate{Name: "api-gateway"}}}
		create(t, sampleIngress(ns), sampleDeployment(ns, 4), sampleHPA(ns, nil), policy)
		setAvailable(t, ns, 4)
		g.Eventually(gate(t, ns, "fleet-ready")).Should(HaveField("Verdict", v1alpha1.VerdictPass))
		since := getPolicy(t, ns, "api-gateway").Status.Ramp.GatesPassingSince
		g.Expect(since).NotTo(BeNil())

		restartManager(t)
		clk.Advance(6 * time.Minute)
		g.Eventually(func() *metav1.Time { return getPolicy(t, ns, "api-gateway").Status.Ramp.Gates[0].ReadAt }).Should(
			Satisfy(func(t *metav1.Time) bool { return !t.Time.Before(clk.Now()) }))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Ramp.GatesPassingSince.Equal(since)).To(BeTrue(), "the streak survives the restart")
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Progress).To(Equal("1/3"))
		clk.Advance(4 * time.Minute)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 2/3"))
	})
}

func TestReleasingTheAutoscalerHold(t *testing.T) {
	t.Run("re-enables a bounded scale-down, lowers minReplicas stepwise, then restores the originals", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		hpa := sampleHPA(ns, nil)
		create(t, sampleIngress(ns), sampleDeployment(ns, 10), hpa)
		hpaBefore := viewOf(t, hpa)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.Autoscaling.ReleaseAfter = &metav1.Duration{Duration: 8 * time.Minute}
		create(t, policy)
		g.Eventually(func() int32 { return *getHPA(t, ns).Spec.MinReplicas }).Should(BeEquivalentTo(10))

		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		type hold struct {
			MinReplicas  int32
			SelectPolicy autoscalingv2.ScalingPolicySelect
		}
		holdOf := func() hold {
			h := getHPA(t, ns)
			return hold{*h.Spec.MinReplicas, *h.Spec.Behavior.ScaleDown.SelectPolicy}
		}
		g.Eventually(holdOf).Should(Equal(hold{8, autoscalingv2.MaxChangePolicySelect}))
		g.Expect(getHPA(t, ns).Spec.Behavior.ScaleDown.Policies).To(Equal([]autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 10, PeriodSeconds: 60}}))
		var seen []int32
		for range 3 {
			prev := holdOf().MinReplicas
			clk.Advance(2 * time.Minute)
			g.Eventually(func() int32 { return holdOf().MinReplicas }).ShouldNot(Equal(prev))
			seen = append(seen, holdOf().MinReplicas)
		}
		g.Expect(seen).To(Equal([]int32{6, 4, 2}))
		clk.Advance(2 * time.Minute)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		g.Expect(viewOf(t, hpa)).To(Equal(hpaBefore))
	})
}

func TestALeverLeftPulled(t *testing.T) {
	t.Run("turns LeverStale after staleAfter, with an Event, and expires when told to", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		policy.Spec.StaleAfter = &metav1.Duration{Duration: time.Hour}
		policy.Spec.ShedExpiresAt = &metav1.Time{Time: clk.Now().Add(90 * time.Minute).Truncate(time.Second)}
		create(t, sampleIngress(ns), policy)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		g.Expect(conditionOf(t, ns, v1alpha1.ConditionLeverStale)()).To(HavePrefix("False"))

		clk.Advance(time.Hour)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionLeverStale)).Should(HavePrefix("True LeverPulledTooLong"))
		g.Eventually(func() []string { return eventReasons(t, ns) }).Should(ContainElement(v1alpha1.ReasonLeverStale))

		clk.Advance(31 * time.Minute)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		p := getPolicy(t, ns, "api-gateway")
		g.Expect(p.Spec.Action).To(Equal(v1alpha1.ActionShedAll), "the controller never writes the spec")
		g.Expect(p.Status.ExpiredLevers).To(Equal([]string{"ShedAll"}))
		g.Expect(p.Status.History[len(p.Status.History)-1].Reason).To(Equal("LeverExpired"))
		g.Expect(conditionOf(t, ns, v1alpha1.ConditionLeverStale)()).To(HavePrefix("False"))
		g.Expect(getIngress(ns, canaryName)).To(BeNil())
	})
}

func TestMetricsAndRequests(t *testing.T) {
	t.Run("exports the action, the phase, the step, gate verdicts, lever flips and the lever's age", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		policy.Spec.Ramp.Steps[0].Gates = []v1alpha1.Gate{{Name: "fleet", WorkloadReady: &v1alpha1.WorkloadReadyGate{Name: "api-gateway"}}}
		create(t, sampleIngress(ns), sampleDeployment(ns, 2), policy)
		setAvailable(t, ns, 1)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Eventually(gate(t, ns, "fleet")).Should(HaveField("Verdict", v1alpha1.VerdictFail))
		clk.Advance(90 * time.Second)

		g.Eventually(func() map[string]float64 { return gather(t, ns) }).Should(And(
			HaveKeyWithValue("floodgate_policy_action{action=Ramp}", 1.0),
			HaveKeyWithValue("floodgate_policy_action{action=ShedAll}", 0.0),
			HaveKeyWithValue("floodgate_policy_phase{phase=Ramping}", 1.0),
			HaveKeyWithValue("floodgate_policy_phase{phase=Shedding}", 0.0),
			HaveKeyWithValue("floodgate_ramp_step", 1.0),
			HaveKeyWithValue("floodgate_gate_verdict{gate=fleet}", 0.0),
			HaveKeyWithValue("floodgate_lever_flips_total{action=ShedAll}", 1.0),
			HaveKeyWithValue("floodgate_lever_flips_total{action=Ramp}", 1.0),
			HaveKey("floodgate_lever_age_seconds"),
		))
		g.Expect(gather(t, ns)["floodgate_lever_age_seconds"]).To(BeNumerically(">=", 90))
	})

	t.Run("handles a request annotation once, even when the same annotations are applied again", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionRamp)
		policy.Spec.AutoscalerRefs = nil
		create(t, sampleIngress(ns), policy)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))

		annotate := func(extra string) {
			p := getPolicy(t, ns, "api-gateway")
			before := p.DeepCopy()
			p.Annotations = map[string]string{v1alpha1.RequestAnnotation: "next:1", v1alpha1.RequestReasonAnnotation: "by hand", "gitops/sync": extra}
			g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		}
		annotate("1")
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 2/3"))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.LastHandledRequest).To(Equal("next:1"))
		annotate("2") // a GitOps re-apply carrying the same request
		g.Consistently(progressOf(t, ns, "api-gateway"), "500ms").Should(Equal("Ramping 2/3"))
	})
}

// gather reads the controller's metrics for a namespace's policy, keyed by name and the labels
// other than namespace and policy.
func gather(t testing.TB, ns string) map[string]float64 {
	g := NewWithT(t)
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key, mine := f.GetName(), false
			var extra []string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "namespace":
					mine = l.GetValue() == ns
				case "policy":
				default:
					extra = append(extra, l.GetName()+"="+l.GetValue())
				}
			}
			if !mine {
				continue
			}
			if len(extra) > 0 {
				key += "{" + strings.Join(extra, ",") + "}"
			}
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func TestAFailingGateWithOnGateFailureStepBack(t *testing.T) {
	t.Run("drops one step and waits there", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		var answer atomic.Int32
		answer.Store(http.StatusOK)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(answer.Load())) }))
		t.Cleanup(hook.Close)
		policy := samplePolicy(ns, v1alpha1.ActionRamp)
		policy.Spec.AutoscalerRefs = nil
		policy.Spec.Ramp.OnGateFailure = v1alpha1.OnGateFailureStepBack
		policy.Spec.Ramp.Gate = v1alpha1.GateSettings{PassFor: &metav1.Duration{Duration: 10 * time.Second}, Interval: &metav1.Duration{Duration: 10 * time.Second}}
		for i := range policy.Spec.Ramp.Steps {
			policy.Spec.Ramp.Steps[i].Gates = []v1alpha1.Gate{{Name: "confirm", Webhook: &v1alpha1.WebhookGate{URL: hook.URL}}}
		}
		create(t, sampleIngress(ns), policy)
		g.Eventually(gate(t, ns, "confirm")).Should(HaveField("Verdict", v1alpha1.VerdictPass))
		clk.Advance(5 * time.Minute)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 2/3"))
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("500"))

		answer.Store(http.StatusInternalServerError)
		clk.Advance(10 * time.Second)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))
		h := getPolicy(t, ns, "api-gateway").Status.History
		g.Expect(h[len(h)-1].Reason).To(Equal(v1alpha1.ReasonGateFailed))
		g.Expect(h[len(h)-1].Message).To(Equal("a gate failed: ramp stepped back to step 1 of 3 (onGateFailure StepBack)"))

		t.Log("it waits at the lower step (the first step cannot step back further)")
		clk.Advance(30 * time.Second)
		g.Consistently(progressOf(t, ns, "api-gateway"), "300ms").Should(Equal("Ramping 1/3"))
	})
}
