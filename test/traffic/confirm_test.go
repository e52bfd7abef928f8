package traffic

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/test/fixtures"
	"floodgate.dev/floodgate/test/trafficenv"
)

// confirmThrough has the policy confirm its levers by probes through the Traefik at address
// (host:port), the application probed too, with a grace of 2 s.
func confirmThrough(address string, then func(*v1alpha1.TrafficPolicy)) func(*v1alpha1.TrafficPolicy) {
	return func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Confirm = &v1alpha1.ConfirmSpec{Address: "http://" + address, ProbeApplication: true, Grace: &metav1.Duration{Duration: 2 * time.Second}}
		if then != nil {
			then(p)
		}
	}
}

// confirmedAs waits until the policy's Confirmed condition has status and reason at its
// generation, and returns the policy.
func confirmedAs(t *testing.T, ns string, status metav1.ConditionStatus, reason string) *v1alpha1.TrafficPolicy {
	t.Helper()
	return fixtures.EventuallyPolicy(t, k8s, client.ObjectKey{Namespace: ns, Name: "api"}, func(p *v1alpha1.TrafficPolicy) bool {
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionConfirmed)
		return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == p.Generation
	})
}

func conditionOf(p *v1alpha1.TrafficPolicy, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(p.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// probesSeen is how many probes reached the app and the shed pod for the policy api of ns.
func probesSeen(t *testing.T, ns string) (app int, shedded float64) {
	t.Helper()
	app, err := env.AppProbes(ns + ".example.com")
	if err != nil {
		t.Fatal(err)
	}
	if shedded, err = trafficenv.ShedProbeAnswers(env.ShedHealth[0], ns+"/api", ns+".example.com", 503); err != nil {
		t.Fatal(err)
	}
	return app, shedded
}

// noProbesFor fails if any probe of the policy api of ns reaches the app or the shed pod within
// three of its probe intervals (1 s each).
func noProbesFor(t *testing.T, ns, when string) {
	t.Helper()
	app, shedded := probesSeen(t, ns)
	time.Sleep(3 * time.Second)
	if app2, shedded2 := probesSeen(t, ns); app2 != app || shedded2 != shedded {
		t.Fatalf("%s: %d probes reached the app and %.0f the shed pod in 3 s; at rest nothing is probed", when, app2-app, shedded2-shedded)
	}
}

// TestEachLeverIsConfirmedThroughTraefik: `--wait=confirmed` returns once probes through the
// real Traefik land where each lever says: ShedAll (the shed server answers them for the policy
// at its generation), a ramp step with an allowlist (AU admitted, another region shed, no header
// admitted), and Normal. Status says Confirmed True with each target's confirmedAt, Ready keeps
// saying written, and at rest, before the first lever and after Normal is confirmed, nothing is
// probed.
func TestEachLeverIsConfirmedThroughTraefik(t *testing.T) {
	for _, target := range targets {
		t.Run(target.kind, func(t *testing.T) {
			ns, unchanged := target.setUp(t, "confirm-"+lower(target.kind), confirmThrough(proxy, func(p *v1alpha1.TrafficPolicy) {
				p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{AllowRegions: []string{"AU"}, Hold: metav1.Duration{Duration: time.Hour}}}}
			}))
			p := confirmedAs(t, ns, metav1.ConditionUnknown, v1alpha1.ReasonNotProbed)
			if c := conditionOf(p, v1alpha1.ConditionConfirmed); !strings.Contains(c.Message, "no lever has been pulled") {
				t.Errorf("before any lever: %s", c.Message)
			}
			noProbesFor(t, ns, "before any lever")

			for _, lever := range []struct {
				args   []string
				probes string
			}{
				{[]string{"shed", "api", "--reason", "herd"}, "1 probe(s) of 1 target(s)"},
				{[]string{"ramp", "api", "--reason", "AU first"}, "3 probe(s) of 1 target(s)"},
				{[]string{"restore", "api"}, "1 probe(s) of 1 target(s)"},
			} {
				appBefore, shedBefore := probesSeen(t, ns)
				out := floodgate(t, append(lever.args, "-n", ns, "--wait=confirmed")...)
				if !strings.Contains(out, "confirmed in ") {
					t.Fatalf("%s: %s", lever.args[0], out)
				}
				took, _, _ := strings.Cut(out[strings.Index(out, "confirmed in "):], ":")
				t.Logf("%s: %s", lever.args[0], took)
				p := confirmedAs(t, ns, metav1.ConditionTrue, v1alpha1.ReasonDataPlaneAnswers)
				if c := conditionOf(p, v1alpha1.ConditionConfirmed); !strings.Contains(c.Message, lever.probes) {
					t.Errorf("%s: Confirmed says %q, want %q", lever.args[0], c.Message, lever.probes)
				}
				if c := conditionOf(p, v1alpha1.ConditionReady); c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonApplied {
					t.Errorf("%s: Ready %s %s: %s", lever.args[0], c.Status, c.Reason, c.Message)
				}
				if tgt := p.Status.Targets[0]; tgt.ConfirmedAt == nil || tgt.ConfirmMessage != "" {
					t.Errorf("%s: target confirmedAt %v, message %q", lever.args[0], tgt.ConfirmedAt, tgt.ConfirmMessage)
				}
				if out := floodgate(t, "status", "api", "-n", ns); !strings.Contains(out, "(DataPlaneAnswers) the data plane answers as the lever says") ||
					!strings.Contains(out, "confirmed in the data plane") {
					t.Errorf("%s: kubectl floodgate status does not say the lever is confirmed:\n%s", lever.args[0], out)
				}
				app, shedded := probesSeen(t, ns)
				switch lever.args[0] {
				case "shed":
					// (A probe sent before Traefik took the flip reaches the app: not yet confirmed.)
					if shedded == shedBefore {
						t.Errorf("ShedAll: no probe was shed (%d reached the app)", app-appBefore)
					}
				case "ramp":
					if shedded == shedBefore || app-appBefore < 2 {
						t.Errorf("the AU step: %.0f probes shed, %d reached the app; want the refused region shed, AU and no header admitted", shedded-shedBefore, app-appBefore)
					}
				}
			}
			noProbesFor(t, ns, "once Normal is confirmed")
			all(t, get(ns+".example.com"), 100, app)
			unchanged(t)
		})
	}
}

// TestADataPlaneThatDoesNotServeTheLeverIsNotConfirmed: where the data plane does not answer as
// the lever says, Confirmed turns False once the grace is over, naming the target, the probe and
// what came back, while Ready says the lever is written:
//   - an Ingress of a class no data plane serves: Traefik answers 404 itself, to a shed probe and,
//     back at Normal, to one the lever admits;
//   - the Traefik probes go through stops: no answer;
//   - the shed pods are not ready: Traefik's NGINX provider skips the canary, and the app answers
//     (Ready says so too: ShedBackendUnavailable).
func TestADataPlaneThatDoesNotServeTheLeverIsNotConfirmed(t *testing.T) {
	t.Run("wrong class", func(t *testing.T) {
		ns := appBackend(t, "confirm-class")
		fixtures.Create(t, k8s, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
			Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("served-by-nobody"), Rules: []networkingv1.IngressRule{{
				Host: ns + ".example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "app", Port: networkingv1.ServiceBackendPort{Number: 80}}},
				}}}},
			}}},
		}, &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs: []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "api"}}, Action: v1alpha1.ActionShedAll}})
		edit(t, ns, confirmThrough(proxy, nil))
		p := confirmedAs(t, ns, metav1.ConditionFalse, v1alpha1.ReasonDataPlaneDisagrees)
		disagrees(t, p, "Ingress/api: GET "+ns+".example.com/ through http://"+proxy+" should be shed by this policy (503 from the shed server), got an answer 404 not from the shed server")
		// Back to Normal: the proxy's 404 is not the application admitting the probe.
		edit(t, ns, func(p *v1alpha1.TrafficPolicy) { p.Spec.Action = v1alpha1.ActionNormal })
		fixtures.EventuallyPolicy(t, k8s, client.ObjectKey{Namespace: ns, Name: "api"}, func(p *v1alpha1.TrafficPolicy) bool {
			c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionConfirmed)
			return p.Status.Phase == v1alpha1.PhaseNormal && c != nil && c.Reason == v1alpha1.ReasonDataPlaneDisagrees && c.ObservedGeneration == p.Generation &&
				strings.Contains(c.Message, "should be admitted (an answer not from the shed server, and no 5xx, 404 or 421), got an answer 404 not from the shed server")
		})
	})

	t.Run("Traefik stopped", func(t *testing.T) {
		stopping, stop, err := env.StartProxy(100 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		ns, _ := ingressFixture(t, "confirm-stopped", confirmThrough(stopping, nil))
		floodgate(t, "shed", "api", "-n", ns, "--reason", "herd", "--wait=confirmed")
		stop()
		p := confirmedAs(t, ns, metav1.ConditionFalse, v1alpha1.ReasonDataPlaneDisagrees)
		disagrees(t, p, "should be shed by this policy (503 from the shed server), got no answer: ")
		if !strings.Contains(conditionOf(p, v1alpha1.ConditionConfirmed).Message, "connection refused") {
			t.Errorf("Confirmed should say the connection was refused: %s", conditionOf(p, v1alpha1.ConditionConfirmed).Message)
		}
	})

	t.Run("shed pods not ready", func(t *testing.T) {
		ns, _ := ingressFixture(t, "confirm-shedpods", confirmThrough(proxy, nil))
		floodgate(t, "shed", "api", "-n", ns, "--reason", "herd", "--wait=confirmed")
		put, err := fixtures.SetShedPods(context.Background(), k8s, []discoveryv1.Endpoint{fixtures.ShedPod(host.HostAddress, false, false, false)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = put() })
		p := confirmedAs(t, ns, metav1.ConditionFalse, v1alpha1.ReasonDataPlaneDisagrees)
		if !strings.Contains(conditionOf(p, v1alpha1.ConditionConfirmed).Message, "got an answer 200 not from the shed server") {
			t.Errorf("Confirmed: %s", conditionOf(p, v1alpha1.ConditionConfirmed).Message)
		}
		if c := conditionOf(p, v1alpha1.ConditionReady); c.Reason != v1alpha1.ReasonNoShedBackend {
			t.Errorf("Ready %s %s", c.Status, c.Reason)
		}
		if err := put(); err != nil {
			t.Fatal(err)
		}
		confirmedAs(t, ns, metav1.ConditionTrue, v1alpha1.ReasonDataPlaneAnswers)
	})
}

// edit changes the policy api of ns.
func edit(t *testing.T, ns string, change func(*v1alpha1.TrafficPolicy)) {
	t.Helper()
	p := &v1alpha1.TrafficPolicy{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, p); err != nil {
		t.Fatal(err)
	}
	before := p.DeepCopy()
	change(p)
	if err := k8s.Patch(context.Background(), p, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
}

// disagrees checks that Confirmed says what, the target's confirmMessage says it too, and Ready
// says the lever is written.
func disagrees(t *testing.T, p *v1alpha1.TrafficPolicy, what string) {
	t.Helper()
	if c := conditionOf(p, v1alpha1.ConditionConfirmed); !strings.Contains(c.Message, what) {
		t.Errorf("Confirmed says %q, want %q", c.Message, what)
	}
	if tgt := p.Status.Targets[0]; tgt.ConfirmedAt != nil || !strings.Contains(tgt.ConfirmMessage, what) {
		t.Errorf("target confirmedAt %v, confirmMessage %q", tgt.ConfirmedAt, tgt.ConfirmMessage)
	}
	if c := conditionOf(p, v1alpha1.ConditionReady); c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonApplied {
		t.Errorf("Ready %s %s: %s; the lever is written", c.Status, c.Reason, c.Message)
	}
}

// TestAForgedProbeTokenIsAClient: requests through Traefik that carry a token that is not the
// policy's get what clients get (no echo) and are counted as clients' answers.
func TestAForgedProbeTokenIsAClient(t *testing.T) {
	ns, _ := ingressFixture(t, "confirm-forged", confirmThrough(proxy, nil))
	floodgate(t, "shed", "api", "-n", ns, "--reason", "herd", "--wait=confirmed")
	before := shedAnswers(t, ns)
	for _, token := range []string{"forged", shed.ProbeToken([]byte(trafficenv.ProbeKey), "another-policys-uid"), shed.ProbeToken([]byte("a key that is not the cluster's"), "x")} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+proxy+"/", nil)
		req.Host = ns + ".example.com"
		req.Header.Set(shed.ProbeTokenHeader, token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != 503 || res.Header.Get(shed.ShedHeader) != "true" || res.Header.Get(shed.ProbePolicyHeader) != "" || res.Header.Get(shed.ProbeGenerationHeader) != "" {
			t.Errorf("token %q: %d, shed %q, echo %q %q", token, res.StatusCode, res.Header.Get(shed.ShedHeader),
				res.Header.Get(shed.ProbePolicyHeader), res.Header.Get(shed.ProbeGenerationHeader))
		}
	}
	if after := shedAnswers(t, ns); after-before != 3 {
		t.Errorf("3 forged probes: %.0f counted as clients' answers", after-before)
	}
}

// TestWaitConfirmedSaysWhyALeverCannotBeConfirmed: with no address to probe, `--wait=confirmed`
// fails at once (not at its timeout) and says why, after the lever was applied.
func TestWaitConfirmedSaysWhyALeverCannotBeConfirmed(t *testing.T) {
	ns, _ := ingressFixture(t, "confirm-none", nil)
	start := time.Now()
	out, err := env.Floodgate("shed", "api", "-n", ns, "--reason", "herd", "--wait=confirmed", "--timeout", "20s")
	if err == nil || !strings.Contains(out, "applied in") ||
		!strings.Contains(out, "cannot be confirmed: nothing is probed: Ingress/api: no data plane address to probe (spec.confirm.address, or the manager's --confirm-address for its data plane)") {
		t.Fatalf("kubectl floodgate shed --wait=confirmed: %v\n%s", err, out)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("it waited %s for what it could say at once", took)
	}
	if out, err := env.Floodgate("shed", "api", "-n", ns, "--wait=sometimes"); err == nil || !strings.Contains(out, "--wait=sometimes: want --wait (applied) or --wait=confirmed") {
		t.Errorf("an unknown --wait: %v\n%s", err, out)
	}
	all(t, get(ns+".example.com"), 20, shedAnswer(503, 120))
}
