package gates

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/gate"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/scheme"
)

var (
	exp  *exporter
	prom *prometheusServer
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	exp = newExporter()
	exp.set("app_error_ratio 0.05\n")
	var err error
	if prom, err = startPrometheus(strings.TrimPrefix(exp.srv.URL, "http://")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	prom.Close()
	exp.srv.Close()
	os.Exit(code)
}

func promGate(query, op, threshold string) v1alpha1.Gate {
	return v1alpha1.Gate{Name: "errors", Prometheus: &v1alpha1.PrometheusGate{
		Address: prom.URL(), Query: query, Operator: v1alpha1.Operator(op), Threshold: threshold,
		MaxAge: &metav1.Duration{Duration: 30 * time.Second},
	}}
}

func TestPrometheusGateReadingsFromARealPrometheus(t *testing.T) {
	reader := &gate.Reader{HTTP: gate.NewHTTPClient(nil)} // unguarded: Prometheus listens on loopback
	ctx := context.Background()
	now := time.Now()
	exp.set(fmt.Sprintf(`app_error_ratio 0.001
app_requests{code="200"} 5
app_requests{code="500"} 1
app_old_sample 0.001 %d
`, now.Add(-90*time.Second).UnixMilli()))
	prom.waitForValue(t, "app_error_ratio", "0.001")
	prom.waitForValue(t, "app_old_sample", "0.001")

	cases := []struct {
		name    string
		gate    v1alpha1.Gate
		verdict v1alpha1.Verdict
		says    string
	}{
		{"below the threshold", promGate("app_error_ratio", "LessThan", "0.01"), v1alpha1.VerdictPass, "0.001 < 0.01"},
		{"above the threshold", promGate("app_error_ratio", "LessThan", "0.0001"), v1alpha1.VerdictFail, "0.001 < 0.0001"},
		{"a computed expression", promGate("sum(app_requests)", "GreaterThanOrEqual", "6"), v1alpha1.VerdictPass, "6 >= 6"},
		{"missing data", promGate("app_no_such_metric", "LessThan", "1"), v1alpha1.VerdictUnknown, "the query returned no data"},
		{"several series", promGate("app_requests", "LessThan", "10"), v1alpha1.VerdictUnknown, "the query returned 2 series"},
		{"a stale sample", promGate("app_old_sample", "LessThan", "1"), v1alpha1.VerdictUnknown, "the newest sample of app_old_sample is 1m"},
		{"a stale sample inside a computed expression", promGate("sum(app_old_sample) * 2", "LessThan", "1"), v1alpha1.VerdictUnknown, "the newest sample of app_old_sample is 1m"},
		{"missing data the query says is zero", promGate("sum(rate(app_no_such_metric[1m])) or vector(0)", "LessThan", "1"), v1alpha1.VerdictPass, "0 < 1"},
		{"a bad query", promGate("app_error_ratio[", "LessThan", "1"), v1alpha1.VerdictUnknown, "querying Prometheus"},
	}
	for _, c := range cases {
		got := reader.Read(ctx, &v1alpha1.TrafficPolicy{}, c.gate)
		if got.Verdict != c.verdict || !strings.Contains(got.Reading+" "+got.Reason, c.says) {
			t.Errorf("%s: got %+v, want %s saying %q", c.name, got, c.verdict, c.says)
		}
	}

	// An exporter that stops reporting a series: a rate or max over a window still answers from the
	// samples before it, which must not pass for a reading.
	exp.set("app_error_ratio 0.001\napp_gone 0.001\n")
	prom.waitForValue(t, "app_gone", "0.001")
	gone := promGate("max_over_time(app_gone[1m])", "LessThan", "1")
	if got := reader.Read(ctx, &v1alpha1.TrafficPolicy{}, gone); got.Verdict != v1alpha1.VerdictPass {
		t.Errorf("a series reporting: got %+v, want Pass", got)
	}
	exp.set("app_error_ratio 0.001\n")
	prom.waitForAbsent(t, "app_gone")
	if got := reader.Read(ctx, &v1alpha1.TrafficPolicy{}, gone); got.Verdict != v1alpha1.VerdictUnknown ||
		got.Reason != "app_gone stopped reporting: it has samples in the last 1m the query reads, none now" {
		t.Errorf("a series that stopped reporting: got %+v, want Unknown saying it stopped reporting", got)
	}

	noTarget := v1alpha1.Gate{Name: "fleet", WorkloadReady: &v1alpha1.WorkloadReadyGate{}}
	if got := reader.Read(ctx, &v1alpha1.TrafficPolicy{}, noTarget); got.Verdict != v1alpha1.VerdictUnknown ||
		got.Reason != "workloadReady names no Deployment and the policy holds no autoscaler" {
		t.Errorf("a workload gate with nothing to read: got %+v", got)
	}

	down := promGate("app_error_ratio", "LessThan", "1")
	down.Prometheus.Address = "http://127.0.0.1:1"
	if got := reader.Read(ctx, &v1alpha1.TrafficPolicy{}, down); got.Verdict != v1alpha1.VerdictUnknown || !strings.Contains(got.Reason, "connection refused") {
		t.Errorf("Prometheus unreachable: got %+v, want Unknown saying connection refused", got)
	}
}

// TestARampAdvancesOnlyOnEvidenceAndHoldsWhilePrometheusIsDown runs in real time with holds of a
// second: Prometheus lives in real time.
func TestARampAdvancesOnlyOnEvidenceAndHoldsWhilePrometheusIsDown(t *testing.T) {
	cp, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	// Prometheus listens on loopback: the gate egress guard is turned off for it.
	mgr, err := manager.New(ctx, cp.Config, manager.Options{Shed: manager.DefaultShed, SkipNameValidation: true, UnguardedGates: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()
	k8s, err := client.New(cp.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}

	exp.set("app_error_ratio 0.05\n")
	prom.waitForValue(t, "app_error_ratio", "0.05")

	prefix := networkingv1.PathTypePrefix
	second := metav1.Duration{Duration: time.Second}
	errorsGate := promGate("app_error_ratio", "LessThan", "0.01")
	policy := &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge"},
		Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs:   []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "api"}},
			RegionHeader: "CF-IPCountry",
			Action:       v1alpha1.ActionRamp,
			Ramp: &v1alpha1.Ramp{
				Gate: v1alpha1.GateSettings{PassFor: &metav1.Duration{Duration: 2 * time.Second}, Interval: &metav1.Duration{Duration: time.Second}},
				Steps: []v1alpha1.RampStep{
					{AllowRegions: []string{"AU"}, Hold: second, Gates: []v1alpha1.Gate{errorsGate}},
					{AdmitPercent: ptr.To[int32](50), Hold: second, Gates: []v1alpha1.Gate{errorsGate}},
					{AdmitPercent: ptr.To[int32](90), Hold: second},
				},
			},
		},
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "edge"}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge"},
			Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: "api.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
				}}}}}}},
		policy,
	} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	get := func() *v1alpha1.TrafficPolicy {
		p := &v1alpha1.TrafficPolicy{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(policy), p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitFor := func(what string, timeout time.Duration, ok func(p *v1alpha1.TrafficPolicy) bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			p := get()
			if ok(p) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s; status: phase %s step %s gates %+v conditions %+v", what, timeout, p.Status.Phase, p.Status.Progress, p.Status.Ramp, p.Status.Conditions)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	holdsFor := func(what string, d time.Duration, ok func(p *v1alpha1.TrafficPolicy) bool) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if p := get(); !ok(p) {
				t.Fatalf("%s: broken; status: phase %s step %s gates %+v", what, p.Status.Phase, p.Status.Progress, p.Status.Ramp)
			}
		}
	}
	atStep := func(step string) func(p *v1alpha1.TrafficPolicy) bool {
		return func(p *v1alpha1.TrafficPolicy) bool {
			return p.Status.Progress == step && p.Status.Phase == v1alpha1.PhaseRamping
		}
	}

	waitFor("the first step with its gate read", 15*time.Second, func(p *v1alpha1.TrafficPolicy) bool {
		return atStep("1/3")(p) && len(p.Status.Ramp.Gates) == 1 && p.Status.Ramp.Gates[0].Reading == "0.05 < 0.01"
	})
	holdsFor("a failing gate holds the step past its hold and passFor", 4*time.Second, atStep("1/3"))

	exp.set("app_error_ratio 0.001\n")
	waitFor("step 2 once the error ratio passed for passFor", 20*time.Second, atStep("2/3"))

	prom.stop()
	waitFor("GateUnknown with the reason when Prometheus is down", 15*time.Second, func(p *v1alpha1.TrafficPolicy) bool {
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionGateUnknown)
		return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "gate errors: querying Prometheus at "+prom.URL())
	})
	holdsFor("the ramp holds while Prometheus is down", 4*time.Second, atStep("2/3"))

	if err := prom.start(); err != nil {
		t.Fatal(err)
	}
	waitFor("step 3 once Prometheus is back and the gate passed for passFor", 30*time.Second, atStep("3/3"))
	waitFor("the ramp completes", 15*time.Second, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseCompleted })
	if c := meta.FindStatusCondition(get().Status.Conditions, v1alpha1.ConditionGateUnknown); c.Status != metav1.ConditionFalse {
		t.Fatalf("GateUnknown after the ramp: %+v", c)
	}
}
