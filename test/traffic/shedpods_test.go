package traffic

import (
	"context"
	"strings"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/test/fixtures"
)

// proxyUnavailable is Traefik's own answer for a service without a server it may send to: 503,
// no Retry-After.
const proxyUnavailable answer = "503 retry-after="

// TestShedAllWhileTheShedPodsFail: while ShedAll holds, the shed pods fail their probe, are all
// gone, and roll to a new address (the old pod terminating and still serving, the new one not
// ready; then the new one ready and the old one gone). Status says ShedBackendUnavailable until
// a shed pod is ready again, and what clients get meanwhile is what its message says:
//   - on an Ingress, Traefik's NGINX provider skips a canary whose backend has no endpoint, as
//     ingress-nginx does: every request reaches the app;
//   - on an HTTPRoute, Traefik answers 503 itself, without Retry-After;
//   - on both, a terminating pod that still serves gets nothing: Traefik answers 503 itself (its
//     NGINX provider keeps the canary, whose only server is fenced).
//
// Once the new pod is ready, the shed answer is back.
func TestShedAllWhileTheShedPodsFail(t *testing.T) {
	noneReady := map[string]answer{"Ingress": app, "HTTPRoute": proxyUnavailable}
	for _, target := range targets {
		t.Run(target.kind, func(t *testing.T) {
			ns, unchanged := target.setUp(t, "shedpods-"+lower(target.kind), nil)
			r := get(ns + ".example.com")
			shedding := shedAnswer(503, 120)
			floodgate(t, "shed", "api", "-n", ns, "--reason", "herd", "--wait")
			settle(t, r, shedding)
			ctx := context.Background()
			put := func() error { return nil }
			t.Cleanup(func() { _ = put() }) // the next test's shed pods are as the suite set them up
			for _, c := range []struct {
				name      string
				endpoints []discoveryv1.Endpoint
				want      answer
			}{
				{"not ready", []discoveryv1.Endpoint{fixtures.ShedPod(host.HostAddress, false, false, false)}, noneReady[target.kind]},
				{"gone", []discoveryv1.Endpoint{}, noneReady[target.kind]},
				{"rolling: the old pod terminating and serving, the new one not ready", []discoveryv1.Endpoint{
					fixtures.ShedPod(host.HostAddress, false, true, true), fixtures.ShedPod(rolledShedPod, false, false, false)}, proxyUnavailable},
				{"rolled: the new one ready, the old one gone", []discoveryv1.Endpoint{fixtures.ShedPod(rolledShedPod, true, true, false)}, shedding},
			} {
				during(t, r, []answer{shedding, proxyUnavailable, noneReady[target.kind]}, c.want, func() {
					var err error
					was := put
					if put, err = fixtures.SetShedPods(ctx, k8s, c.endpoints); err != nil {
						t.Fatal(err)
					}
					if c.name != "not ready" {
						put = was // the first fault's put puts back the suite's shed pods
					}
				})
				all(t, r, 100, c.want)
				says := "True " + v1alpha1.ReasonApplied
				if c.want != shedding {
					says = "False " + v1alpha1.ReasonNoShedBackend
				}
				// Each state of the shed pods is awaited in status on its own: the clients of two
				// states in a row may get the same answer, and status must say the second one.
				draining := strings.Contains(c.name, "terminating")
				p := fixtures.EventuallyPolicy(t, k8s, client.ObjectKey{Namespace: ns, Name: "api"}, func(p *v1alpha1.TrafficPolicy) bool {
					ready := fixtures.Condition(p, v1alpha1.ConditionReady)
					return strings.HasPrefix(ready, says) && draining == strings.Contains(ready, "Traefik does not (it answers 503 itself")
				})
				t.Logf("%s: Ready %s", c.name, fixtures.Condition(p, v1alpha1.ConditionReady))
			}
			// The shed pods back where they were, then Normal.
			during(t, r, []answer{shedding}, shedding, func() {
				if err := put(); err != nil {
					t.Fatal(err)
				}
			})
			restore(t, ns, r, shedding, unchanged)
		})
	}
}
