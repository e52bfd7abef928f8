package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"floodgate.dev/floodgate/api/v1alpha1"
)

func TestKubectlFindsThePlugin(t *testing.T) {
	out := must(t, "floodgate", "--help")
	for _, verb := range []string{"shed", "ramp", "pause", "resume", "next", "back", "approve", "restore", "allow", "status", "history", "list"} {
		if !regexp.MustCompile(`(?m)^\s+` + verb + `\s`).MatchString(out) {
			t.Errorf("kubectl floodgate --help does not list %s:\n%s", verb, out)
		}
	}
}

func TestARunbookThroughEveryVerb(t *testing.T) {
	ns := fixture(t, nil)

	out := must(t, "floodgate", "shed", "api", "-n", ns, "--reason", "herd at the gateway", "--wait")
	if !regexp.MustCompile(`trafficpolicy/api: applied in \d+(\.\d+)?m?s: phase Shedding`).MatchString(out) {
		t.Fatalf("shed --wait must say when it was applied and how long it took:\n%s", out)
	}

	out = must(t, "floodgate", "ramp", "api", "-n", ns, "--reason", "fleet stable", "--wait")
	if !strings.Contains(out, "phase Ramping, step 1/2") {
		t.Fatalf("ramp --wait:\n%s", out)
	}
	// The plugin binary reads the real clock; the controller's (warped, moved only by the tests)
	// is behind it by however long the suite has run: the hold left is 5m less that lag.
	lag := time.Since(env.Clock.Now())
	out = must(t, "floodgate", "status", "api", "-n", ns)
	m := regexp.MustCompile(`Phase:\s+Ramping   step 1/2   hold left ((\d+m)?(\d+s)?)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("status does not show the step and the hold left:\n%s", out)
	}
	if left, err := time.ParseDuration(m[1]); err != nil || left > 5*time.Minute-lag+time.Second || left < 5*time.Minute-lag-5*time.Second {
		t.Errorf("hold left %s, want about %s (5m, less the %s the suite's clock is behind):\n%s", m[1], (5*time.Minute - lag).Round(time.Second), lag.Round(time.Second), out)
	}
	for _, want := range []string{"admit regions AU; 50 requests/s per client per replica",
		"rate limit PerClientPerReplica, answered 503", "held: no scale-down, minReplicas 5", "(by responder: fleet stable)",
		"armed: the API server accepts every lever", "Armed:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %q:\n%s", want, out)
		}
	}

	must(t, "floodgate", "pause", "api", "-n", ns, "--reason", "watching errors", "--wait")
	env.Clock.Advance(10 * time.Minute)
	if p := getPolicy(t, ns); p.Status.Phase != v1alpha1.PhasePaused || p.Status.Progress != "1/2" {
		t.Fatalf("a paused ramp moved: %s %s", p.Status.Phase, p.Status.Progress)
	}
	must(t, "floodgate", "resume", "api", "-n", ns, "--wait")
	out = must(t, "floodgate", "next", "api", "-n", ns, "--reason", "AU healthy", "--wait")
	if !strings.Contains(out, "step 2/2") {
		t.Fatalf("next --wait:\n%s", out)
	}
	out = must(t, "floodgate", "back", "api", "-n", ns, "--reason", "5xx rising", "--wait")
	if !strings.Contains(out, "step 1/2") {
		t.Fatalf("back --wait:\n%s", out)
	}
	must(t, "floodgate", "next", "api", "-n", ns, "--wait")

	if _, err := kubectl(t, env.Kubeconfig, "floodgate", "approve", "api", "-n", ns); err == nil {
		t.Fatal("approve must be refused while the step's hold has not ended")
	}
	env.Clock.Advance(10 * time.Minute)
	eventually(t, func() bool { p := getPolicy(t, ns); return p.Status.Ramp != nil && p.Status.Ramp.AwaitingApproval })
	out = must(t, "floodgate", "approve", "api", "-n", ns, "--reason", "p99 fine", "--wait")
	if !strings.Contains(out, "phase Releasing") {
		t.Fatalf("approve --wait:\n%s", out)
	}

	must(t, "floodgate", "allow", "api", "NZ", "AU", "-n", ns, "--wait")
	if p := getPolicy(t, ns); strings.Join(p.Spec.AllowRegions, ",") != "NZ,AU" {
		t.Fatalf("allow set %v", p.Spec.AllowRegions)
	}
	must(t, "floodgate", "allow", "api", "-n", ns, "--wait")

	out = must(t, "floodgate", "history", "api", "-n", ns)
	for _, want := range []string{"herd at the gateway", "Paused", "Resumed", "StepBack", "5xx rising", "AwaitingApproval", "p99 fine", "responder"} {
		if !strings.Contains(out, want) {
			t.Errorf("history does not show %q:\n%s", want, out)
		}
	}
	out = must(t, "floodgate", "list", "-A")
	if !regexp.MustCompile(ns + `\s+api\s+Ramp\s+Releasing`).MatchString(out) {
		t.Fatalf("list -A:\n%s", out)
	}

	out = must(t, "floodgate", "restore", "api", "-n", ns, "--wait")
	if !strings.Contains(out, "phase Releasing") {
		t.Fatalf("restore --wait:\n%s", out)
	}
}

func TestDryRunPrintsTheDiffOfEveryTargetAndChangesNothing(t *testing.T) {
	ns := fixture(t, nil)
	before := getPolicy(t, ns).ResourceVersion

	out := must(t, "floodgate", "ramp", "api", "-n", ns, "--dry-run")
	for _, want := range []string{
		"trafficpolicy/api (dry run): phase Normal → Ramping, step 1/2",
		"--- Ingress api (now)",
		`-    nginx.ingress.kubernetes.io/limit-rps: "1000"`,
		`+    nginx.ingress.kubernetes.io/limit-rps: "50"`,
		"+++ Ingress api-floodgate-api (after)",
		"+    nginx.ingress.kubernetes.io/canary-by-header: CF-IPCountry",
		"+    nginx.ingress.kubernetes.io/canary-by-header-pattern: ^([^A].*|A([^U].*|U(.+))?)?$",
		"--- HorizontalPodAutoscaler api (now)",
		"-  minReplicas: 2",
		"+  minReplicas: 5",
		"+      selectPolicy: Disabled",
		"armed: True (LeversAccepted) the API server accepts, in a dry run, every lever (ShedAll, step 1, step 2, Normal) for 1 target and 1 autoscaler",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run does not show %q:\n%s", want, out)
		}
	}
	if after := getPolicy(t, ns).ResourceVersion; after != before {
		t.Fatal("--dry-run changed the policy")
	}
	if _, err := kubectl(t, env.Kubeconfig, "get", "ingress", "api-floodgate-api", "-n", ns); err == nil {
		t.Fatal("--dry-run created the canary")
	}
}

func TestClearErrors(t *testing.T) {
	ns := fixture(t, nil)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"floodgate", "shed", "nope", "-n", ns}, `trafficpolicy "nope" not found in namespace "` + ns + `"`},
		{[]string{"floodgate", "next", "api", "-n", ns}, "next: policy api is not ramping (action Normal, phase Normal)"},
		{[]string{"floodgate", "resume", "api", "-n", ns}, "policy api is not ramping"},
		{[]string{"floodgate", "allow", "api", "au", "-n", ns}, `allow: "au" is not a region code`},
	}
	for _, c := range cases {
		out, err := kubectl(t, env.Kubeconfig, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("kubectl %s: err=%v, want a message containing %q:\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
}

func TestRBACDeniedSaysWhatIsMissing(t *testing.T) {
	ns := fixture(t, nil)
	user, err := env.ControlPlane.Env.AddUser(envtest.User{Name: "intruder"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := kubectl(t, path, "floodgate", "shed", "api", "-n", ns)
	if err == nil || !strings.Contains(out, `not allowed to read trafficpolicy "api"`) || !strings.Contains(out, "floodgate-responder") {
		t.Fatalf("err=%v:\n%s", err, out)
	}
}

func TestWaitSaysWhenTheControllerDoesNotAnswer(t *testing.T) {
	ns := fixture(t, nil)
	_ = env.StopManager()
	defer func() {
		if err := env.StartManager(); err != nil {
			t.Fatal(err)
		}
	}()
	out, err := kubectl(t, env.Kubeconfig, "floodgate", "shed", "api", "-n", ns, "--wait", "--timeout", "1s")
	if err == nil || !strings.Contains(out, "no acknowledgement from the controller within 1s: is the Floodgate manager running?") {
		t.Fatalf("err=%v:\n%s", err, out)
	}
}

func TestAStepATargetCannotTakeIsShownUpFrontAndHoldsTheRamp(t *testing.T) {
	ns := fixture(t, func(p *v1alpha1.TrafficPolicy) { p.Spec.MissingRegion = v1alpha1.MissingRegionShed })
	why := "missingRegion: Shed cannot be honoured on ingress-nginx"

	out := must(t, "floodgate", "ramp", "api", "-n", ns, "--dry-run")
	for _, want := range []string{
		"the ramp would hold where it is (phase Normal)",
		"would not be applied to it: UnsupportedSetting: " + why,
		"cannot take: step 1 on Ingress api: " + why,
		"no target object would change",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run does not show %q:\n%s", want, out)
		}
	}
	out = must(t, "floodgate", "status", "api", "-n", ns)
	for _, want := range []string{"StepUnsupported:  True (UnsupportedSetting) step 1 on Ingress api: " + why, "cannot take step 1: " + why} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %q before any lever is pulled:\n%s", want, out)
		}
	}

	must(t, "floodgate", "shed", "api", "-n", ns, "--wait")
	out, err := kubectl(t, env.Kubeconfig, "floodgate", "ramp", "api", "-n", ns, "--wait", "--timeout", "10s")
	if err == nil || !strings.Contains(out, "not applied: UnsupportedSetting: the ramp holds: its next step cannot be applied everywhere: "+why) {
		t.Fatalf("ramp --wait on a step the target cannot take: err=%v\n%s", err, out)
	}
	if p := getPolicy(t, ns); p.Status.Phase != v1alpha1.PhaseShedding {
		t.Fatalf("the ramp must hold at ShedAll, phase %s", p.Status.Phase)
	}
}

func TestTheDeployedManagersGatesCannotReachLoopback(t *testing.T) {
	var hits atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer hook.Close()
	ns := fixture(t, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Ramp.Steps[0].Gates = []v1alpha1.Gate{{Name: "confirm", Webhook: &v1alpha1.WebhookGate{URL: hook.URL + "/confirm"}}}
	})
	must(t, "floodgate", "ramp", "api", "-n", ns, "--wait")
	eventually(t, func() bool {
		c := meta.FindStatusCondition(getPolicy(t, ns).Status.Conditions, v1alpha1.ConditionGateUnknown)
		return c != nil && c.Status == metav1.ConditionTrue && strings.HasSuffix(c.Message, "refused by the gate egress policy")
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("the gate reached a loopback webhook %d times", n)
	}
}

func TestShedWaitSaysWhenTheShedPodsAreNotReady(t *testing.T) {
	ns := fixture(t, nil)
	setShedPodsReady(t, false)
	defer setShedPodsReady(t, true)
	out, err := kubectl(t, env.Kubeconfig, "floodgate", "shed", "api", "-n", ns, "--wait")
	if err == nil || !strings.Contains(out, "ShedBackendUnavailable: not shedding: the shed backend has no ready endpoints") {
		t.Fatalf("shed --wait with no ready shed pods: err=%v\n%s", err, out)
	}
}

func TestAFleetBySelectorShowsInDryRunAndEveryTargetInStatusTargets(t *testing.T) {
	const fleet = 14 // more than status lists (pass.MaxListedTargets)
	ns := fixture(t, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.TargetRefs = nil
		p.Spec.TargetSelector = &v1alpha1.TargetSelector{MatchLabels: map[string]string{"fleet": "edge"}}
	})
	prefix := networkingv1.PathTypePrefix
	for i := range fleet {
		name := fmt.Sprintf("edge-%02d", i)
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"fleet": "edge"}},
			Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: name + ".example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}}},
				}}}}}},
		}
		if err := k8s.Create(context.Background(), ing); err != nil {
			t.Fatal(err)
		}
	}

	out := must(t, "floodgate", "shed", "api", "-n", ns, "--dry-run")
	for _, want := range []string{
		fmt.Sprintf("targets: %d: Ingress edge-00, Ingress edge-01,", fleet),
		"and 4 more (kubectl floodgate status --targets)",
		"+++ Ingress edge-13-floodgate-api (after)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run does not show %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Ingress api (now)") {
		t.Errorf("dry run shows an Ingress the selector does not select:\n%s", out)
	}

	must(t, "floodgate", "shed", "api", "-n", ns, "--wait", "--reason", "fleet drill")
	eventually(t, func() bool {
		st := getPolicy(t, ns).Status
		return st.TargetCount == fleet && st.TargetsNotListed == fleet-10
	})
	out = must(t, "floodgate", "status", "api", "-n", ns, "--targets")
	if !strings.Contains(out, fmt.Sprintf("Targets of %s/api: %d", ns, fleet)) {
		t.Errorf("status --targets does not count the fleet:\n%s", out)
	}
	for i := range fleet {
		if want := fmt.Sprintf("Ingress edge-%02d  canary edge-%02d-floodgate-api", i, i); !strings.Contains(out, want) {
			t.Errorf("status --targets does not show %q:\n%s", want, out)
		}
	}
	must(t, "floodgate", "restore", "api", "-n", ns, "--wait")
	out = must(t, "floodgate", "status", "api", "-n", ns, "--targets")
	if strings.Contains(out, "canary") || strings.Count(out, "untouched") != fleet {
		t.Errorf("after restore every target should be untouched:\n%s", out)
	}
}

// A shedExpiresAt left over from the last incident: a new pull of ShedAll is never expired by it,
// whether it is pulled with the plugin (which clears it and says so) or by editing the spec (the
// controller ignores an expiry not later than the pull).
func TestAShedAllExpiryLeftOverFromTheLastIncidentNeverExpiresANewPull(t *testing.T) {
	past := metav1.NewTime(env.Clock.Now().Add(-time.Hour).Truncate(time.Second))
	leftOver := func(p *v1alpha1.TrafficPolicy) { p.Spec.ShedExpiresAt = &past }

	t.Run("kubectl floodgate shed clears it and says so", func(t *testing.T) {
		ns := fixture(t, leftOver)
		out := must(t, "floodgate", "shed", "api", "-n", ns, "--wait")
		for _, want := range []string{"shedExpiresAt " + past.UTC().Format(time.RFC3339) + " had already passed: cleared, so it cannot expire this ShedAll", "phase Shedding"} {
			if !strings.Contains(out, want) {
				t.Fatalf("shed --wait does not say %q:\n%s", want, out)
			}
		}
		if p := getPolicy(t, ns); p.Spec.ShedExpiresAt != nil || p.Status.ObservedAction != v1alpha1.ActionShedAll {
			t.Fatalf("expiry %v, action in force %s", p.Spec.ShedExpiresAt, p.Status.ObservedAction)
		}
	})
	t.Run("a spec edit: the controller ignores it", func(t *testing.T) {
		ns := fixture(t, leftOver)
		must(t, "patch", "trafficpolicy", "api", "-n", ns, "--type", "merge", "-p", `{"spec":{"action":"ShedAll"}}`)
		waitPhase(t, ns, v1alpha1.PhaseShedding)
		env.Clock.Advance(time.Minute)
		for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if p := getPolicy(t, ns); p.Status.Phase != v1alpha1.PhaseShedding || len(p.Status.ExpiredLevers) != 0 {
				t.Fatalf("the pull was expired by a past expiry: phase %s, expired %v", p.Status.Phase, p.Status.ExpiredLevers)
			}
		}
	})
}

// --wait exits 0 only when the lever asked for is the one in force: a ShedAll that expired (on
// the controller's clock) is not reported as applied when shed is asked again.
func TestShedWaitFailsWhenTheActionInForceIsNotShedAll(t *testing.T) {
	soon := metav1.NewTime(env.Clock.Now().Add(30 * time.Minute).Truncate(time.Second))
	ns := fixture(t, func(p *v1alpha1.TrafficPolicy) { p.Spec.ShedExpiresAt = &soon })
	must(t, "floodgate", "shed", "api", "-n", ns, "--wait")
	env.Clock.Advance(31 * time.Minute)
	eventually(t, func() bool { return getPolicy(t, ns).Status.ObservedAction == v1alpha1.ActionNormal })
	// The plugin's clock is the real one: to it the expiry has not passed, so it is not cleared,
	// and the controller keeps the expired lever expired.
	out, err := kubectl(t, env.Kubeconfig, "floodgate", "shed", "api", "-n", ns, "--wait")
	if err == nil || !strings.Contains(out, "trafficpolicy/api: ShedAll not in force: the action in force is Normal, not ShedAll (expired: ShedAll): phase ") {
		t.Fatalf("shed --wait must fail and say the action in force; err=%v:\n%s", err, out)
	}
}
