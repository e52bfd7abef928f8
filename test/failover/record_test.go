package failover

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/test/crds"
	"floodgate.dev/floodgate/test/fixtures"
)

// TestAManagerKilledMidLeverOverALargeRouteLeavesItExactlyAsRecorded kills the manager (SIGKILL)
// at twelve points of ShedAll ↔ Normal flips over an HTTPRoute of about 150 KB of rules, whose
// restore record only fits compressed: each time a fresh manager finishes the lever (every rule
// shed and the compressed record on the route, or the route back exactly as it was with no
// record), and the last restore leaves the route as it was before the first.
func TestAManagerKilledMidLeverOverALargeRouteLeavesItExactlyAsRecorded(t *testing.T) {
	files, err := crds.Write(t.TempDir(), crds.GatewayAPI)
	if err != nil {
		t.Fatal(err)
	}
	_, kubeconfig, k8s := controlPlane(t, files...)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := drill.ShedPods(ctx, k8s); err != nil {
		t.Fatal(err)
	}
	route := &gatewayv1.HTTPRoute{
		// As `kubectl apply` leaves it: no annotation but its last-applied configuration, which
		// the manager's cache never holds (and restore must keep).
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge", Labels: map[string]string{"tier": "edge"},
			Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"apiVersion":"gateway.networking.k8s.io/v1","kind":"HTTPRoute"}`}},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "eg"}}},
			Rules:           fixtures.LargeRules("api", 80),
		},
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "edge"}},
		&gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "eg"}, Spec: gatewayv1.GatewayClassSpec{ControllerName: "gateway.envoyproxy.io/gatewayclass-controller"}},
		&gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "eg", Namespace: "edge"}, Spec: gatewayv1.GatewaySpec{
			GatewayClassName: "eg", Listeners: []gatewayv1.Listener{{Name: "http", Protocol: gatewayv1.HTTPProtocolType, Port: 80}}}},
		route,
	} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	go registered.PlayGateways(ctx, k8s, "", 20*time.Millisecond)
	before := getRoute(t, k8s)

	if err := k8s.Create(ctx, &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge"},
		Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs: []v1alpha1.TargetRef{{Group: v1alpha1.GroupGatewayAPI, Kind: v1alpha1.TargetKindHTTPRoute, Name: "api"}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	manager := startManager(t, kubeconfig)
	waitForStatus(t, k8s, 30*time.Second, func(p *v1alpha1.TrafficPolicy) bool {
		return p.Status.Phase == v1alpha1.PhaseNormal && p.Status.ObservedGeneration == p.Generation
	})

	// One flip each way, not killed, measures how long the manager takes to write the route (the
	// API server checks a route this large against Gateway API's CEL rules for about 100 ms).
	var took time.Duration
	for _, action := range []v1alpha1.Action{v1alpha1.ActionShedAll, v1alpha1.ActionNormal} {
		written, _ := flip(t, k8s, action, time.Minute)
		took = max(took, written)
		waitForRoute(t, k8s, 30*time.Second, func(r *gatewayv1.HTTPRoute) (string, bool) { return lever(action, r, before) })
	}
	t.Logf("the manager writes the route %s after a flip", took.Round(time.Millisecond))

	// The kills land before the write, while it is in flight, and after it, before and after status.
	action, afterTheWrite := v1alpha1.ActionNormal, 0
	for i, share := range []float64{0, 0.3, 0.6, 0.8, 0.9, 1, 1.1, 1.2, 1.5, 2, 3, 5} {
		action = map[v1alpha1.Action]v1alpha1.Action{v1alpha1.ActionNormal: v1alpha1.ActionShedAll, v1alpha1.ActionShedAll: v1alpha1.ActionNormal}[action]
		after := time.Duration(share * float64(took))
		wrote, flipped := flip(t, k8s, action, after)
		written := wrote <= after
		time.Sleep(time.Until(flipped.Add(after)))
		_ = manager.cmd.Process.Kill()
		<-manager.done
		killed := fmt.Sprintf("flip %d to %s, killed %s after (route written before the kill: %t): %s",
			i+1, action, after.Round(time.Millisecond), written, describeRoute(getRoute(t, k8s), before))
		t.Log(killed)
		if written {
			afterTheWrite++
		}
		manager = startManager(t, kubeconfig)
		waitForRoute(t, k8s, 30*time.Second, func(r *gatewayv1.HTTPRoute) (string, bool) {
			what, ok := lever(action, r, before)
			return killed + "; now: " + what, ok
		})
		waitForStatus(t, k8s, 30*time.Second, func(p *v1alpha1.TrafficPolicy) bool {
			want := map[v1alpha1.Action]v1alpha1.Phase{v1alpha1.ActionShedAll: v1alpha1.PhaseShedding, v1alpha1.ActionNormal: v1alpha1.PhaseNormal}[action]
			return p.Status.Phase == want && p.Status.ObservedGeneration == p.Generation
		})
	}
	if afterTheWrite == 0 {
		t.Fatal("no kill landed after the manager wrote the route: the record was never recovered from")
	}
}

// flip sets the policy's action, and waits at most within for the manager to write the route's
// spec. It returns how long that took after the flip (more than within when it did not), and
// when the flip was.
func flip(t *testing.T, c client.WithWatch, action v1alpha1.Action, within time.Duration) (time.Duration, time.Time) {
	t.Helper()
	w, err := c.Watch(context.Background(), &gatewayv1.HTTPRouteList{}, client.InNamespace("edge"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	prev := getRoute(t, c)
	flipped := time.Now()
	setAction(t, c, action)
	deadline := time.After(within)
	for {
		select {
		case ev := <-w.ResultChan():
			if r, ok := ev.Object.(*gatewayv1.HTTPRoute); ok && !equality.Semantic.DeepEqual(r.Spec, prev.Spec) {
				return time.Since(flipped), flipped
			}
		case <-deadline:
			return within + time.Nanosecond, flipped
		}
	}
}

// lever says whether r is what action leaves of before: every rule shed, with the compressed
// record of before on it; or before exactly (its last-applied configuration too), with no record.
func lever(action v1alpha1.Action, r, before *gatewayv1.HTTPRoute) (string, bool) {
	what := describeRoute(r, before)
	record, recorded := r.Annotations[restore.Annotation]
	if action == v1alpha1.ActionNormal {
		return what, !recorded && equality.Semantic.DeepEqual(r.Spec, before.Spec) &&
			equality.Semantic.DeepEqual(r.Labels, before.Labels) && equality.Semantic.DeepEqual(r.Annotations, before.Annotations)
	}
	for _, rule := range r.Spec.Rules {
		if len(rule.BackendRefs) != 1 || rule.BackendRefs[0].Name != "floodgate-shed-api" {
			return what, false
		}
	}
	return what, recorded && strings.HasPrefix(record, restore.CompressedPrefix) && len(r.Spec.Rules) == len(before.Spec.Rules)
}

func describeRoute(r, before *gatewayv1.HTTPRoute) string {
	shed := 0
	for _, rule := range r.Spec.Rules {
		if len(rule.BackendRefs) == 1 && rule.BackendRefs[0].Name == "floodgate-shed-api" {
			shed++
		}
	}
	record := r.Annotations[restore.Annotation]
	return fmt.Sprintf("%d of %d rules shed, record of %d bytes (compressed %t), spec as before %t",
		shed, len(r.Spec.Rules), len(record), strings.HasPrefix(record, restore.CompressedPrefix), equality.Semantic.DeepEqual(r.Spec, before.Spec))
}

func getRoute(t *testing.T, c client.Client) *gatewayv1.HTTPRoute {
	t.Helper()
	r := &gatewayv1.HTTPRoute{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "edge", Name: "api"}, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func waitForRoute(t *testing.T, c client.Client, timeout time.Duration, ok func(*gatewayv1.HTTPRoute) (string, bool)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		what, done := ok(getRoute(t, c))
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func setAction(t *testing.T, c client.Client, action v1alpha1.Action) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &v1alpha1.TrafficPolicy{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "edge", Name: "api"}, p); err != nil {
			return err
		}
		p.Spec.Action = action
		return c.Update(context.Background(), p)
	})
	if err != nil {
		t.Fatal(err)
	}
}
