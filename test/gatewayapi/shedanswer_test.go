package gatewayapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/test/fixtures"
)

// startShedServer runs the real shed server until the test ends, and returns how to ask it.
func startShedServer(t *testing.T) func(host, path string) fixtures.ShedAnswer {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	ask, err := fixtures.StartShedServer(ctx, cp.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	return func(host, path string) fixtures.ShedAnswer {
		a, _ := ask(host, path) // a failed request is no answer yet (the zero one)
		return a
	}
}

// An attacker namespace's policy at Normal over an HTTPRoute of its own (accepted by its
// gateway) never chooses the shed answer for a victim's route, by any hostname form and in either
// order of creation: the victim's requests get the neutral answer, and both policies are told.
func TestNoNamespaceSteersAnotherRoutesAnswerByAnyHostnameForm(t *testing.T) {
	for i, form := range []struct {
		name      string
		hostnames func(victim string) []gatewayv1.Hostname
	}{
		{"a route without hostnames", func(string) []gatewayv1.Hostname { return nil }},
		{"a wildcard hostname over the victim's", func(string) []gatewayv1.Hostname { return []gatewayv1.Hostname{"*.example.com"} }},
		{"the victim's own hostname", func(v string) []gatewayv1.Hostname {
			return []gatewayv1.Hostname{gatewayv1.Hostname(v + ".example.com")}
		}},
	} {
		for j, attackerFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, attacker first %t", form.name, attackerFirst), func(t *testing.T) {
				ask := startShedServer(t)
				victim, attacker := fmt.Sprintf("victim-%d-%d", i, j), fmt.Sprintf("attacker-%d-%d", i, j)
				steer := func() {
					fixture(t, attacker)
					editRoute(t, attacker, func(r *gatewayv1.HTTPRoute) { r.Spec.Hostnames = form.hostnames(victim) })
					create(t, policy(attacker, func(p *v1alpha1.TrafficPolicy) {
						p.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](418), RetryAfterSeconds: ptr.To[int32](1)}
					}))
				}
				if attackerFirst {
					steer()
				}
				fixture(t, victim)
				create(t, policy(victim, func(p *v1alpha1.TrafficPolicy) {
					p.Spec.Action, p.Spec.Shed = v1alpha1.ActionShedAll, v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](30)}
				}))
				victimAnswers := func() {
					eventually(t, func() (fixtures.ShedAnswer, bool) { a := ask(victim+".example.com", "/"); return a, a.Code == 429 })
				}
				if !attackerFirst {
					victimAnswers() // the table has the victim's answer before the attacker comes
					steer()
				}
				for _, path := range []string{"/", "/v2/users"} {
					eventually(t, func() (fixtures.ShedAnswer, bool) {
						a := ask(strings.ToUpper(victim)+".example.com.", path)
						return a, a.Code == 503 && a.RetryAfter == "120"
					})
				}
				for _, who := range [][2]string{{victim, attacker}, {attacker, victim}} {
					eventuallyPolicy(t, who[0], func(p *v1alpha1.TrafficPolicy) bool {
						c := condition(p, v1alpha1.ConditionDegraded)
						return strings.HasPrefix(c, "True "+v1alpha1.ReasonConflict) && strings.Contains(c, "also claimed by policy "+who[1]+"/api of another namespace")
					})
				}
				t.Log("the attacker's policy goes: the victim's own answer is back")
				if err := k8s.Delete(context.Background(), getPolicy(t, attacker)); err != nil {
					t.Fatal(err)
				}
				victimAnswers()
			})
		}
	}
}

func TestTheShedServerAnswersAnHTTPRoutesHostWithItsPolicysAnswer(t *testing.T) {
	ns := fixture(t, "shed-answer")
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action = v1alpha1.ActionShedAll
		p.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](90)}
	}))
	ask := startShedServer(t)
	get := func(path string) fixtures.ShedAnswer { return ask(ns+".example.com", path) }
	for _, path := range []string{"/", "/v2/users"} {
		got := eventually(t, func() (fixtures.ShedAnswer, bool) { a := get(path); return a, a.Code == 429 })
		if got.RetryAfter != "90" || !strings.Contains(got.Body, `"policy":"`+ns+`/api"`) {
			t.Fatalf("%s: %+v", path, got)
		}
	}
}

func TestAHostClaimedByAPolicyOfAnotherNamespaceGetsTheNeutralAnswerAndBothAreTold(t *testing.T) {
	ns := fixture(t, "claimed")
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action, p.Spec.Shed = v1alpha1.ActionShedAll, v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429)}
	}))
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseShedding })

	tenant := fixture(t, "claimed-elsewhere")
	editRoute(t, tenant, func(r *gatewayv1.HTTPRoute) {
		r.Spec.Hostnames = []gatewayv1.Hostname{gatewayv1.Hostname(ns + ".example.com")}
	})
	create(t, policy(tenant, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action, p.Spec.Shed = v1alpha1.ActionShedAll, v1alpha1.ShedResponse{RedirectURL: "https://" + redirectHost + "/elsewhere"}
	}))
	for _, who := range [][2]string{{ns, tenant}, {tenant, ns}} {
		p := eventuallyPolicy(t, who[0], func(p *v1alpha1.TrafficPolicy) bool {
			return strings.Contains(condition(p, v1alpha1.ConditionDegraded), "also claimed by policy "+who[1]+"/api of another namespace")
		})
		if !strings.HasPrefix(condition(p, v1alpha1.ConditionDegraded), "True "+v1alpha1.ReasonConflict) {
			t.Fatalf("%s: %s", who[0], condition(p, v1alpha1.ConditionDegraded))
		}
	}
}

// The shed server started on a cluster without Gateway API learns HTTPRoutes once their CRD is
// installed, without a restart: a route's host then gets its policy's answer, not the neutral one.
func TestTheShedServerFollowsHTTPRoutesOnceGatewayAPIIsInstalledAfterItStarts(t *testing.T) {
	bare, err := controlplane.Start() // Floodgate's CRDs only
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bare.Stop() })
	c, err := client.New(bare.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	ask, err := fixtures.StartShedServer(ctx, bare.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := "late-crd"
	p := policy(ns, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action = v1alpha1.ActionShedAll
		p.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](90)}
	})
	for _, o := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, p} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	neutral := eventually(t, func() (fixtures.ShedAnswer, bool) {
		a, err := ask(ns+".example.com", "/")
		return a, err == nil && a.Code != 0
	})
	if neutral.Code == 429 {
		t.Fatalf("answered with the policy's code before any route exists: %+v", neutral)
	}

	t.Log("Gateway API is installed after the shed server started, then the route")
	if _, err := envtest.InstallCRDs(bare.Config, envtest.CRDInstallOptions{Paths: gatewayCRDs(), ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
	route := userRoute(ns)
	if err := c.Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	// Its Gateway accepts it (played): a route no Gateway accepted makes no claim.
	if err := (&gatewayapi.Gateway{Client: c, ControllerName: gatewayapi.EnvoyGatewayController}).Report(ctx, route); err != nil {
		t.Fatal(err)
	}
	got := eventually(t, func() (fixtures.ShedAnswer, bool) { a, _ := ask(ns+".example.com", "/"); return a, a.Code == 429 })
	if got.RetryAfter != "90" || !strings.Contains(got.Body, `"policy":"`+ns+`/api"`) {
		t.Fatalf("%+v", got)
	}
}

// A route no Gateway accepted carries no traffic: its policy chooses nobody's answer, whatever its
// hostnames; once its Gateway accepts it, the overlap is neutralized and both policies are told.
func TestARouteNoGatewayAcceptedMakesNoClaimUntilItIsAccepted(t *testing.T) {
	ask := startShedServer(t)
	victim, attacker := "victim-unaccepted", "attacker-unaccepted"
	rejections.Store(attacker, "no listener allows routes from this namespace")
	fixture(t, attacker)
	editRoute(t, attacker, func(r *gatewayv1.HTTPRoute) {
		r.Spec.Hostnames = []gatewayv1.Hostname{gatewayv1.Hostname(victim + ".example.com")}
	})
	create(t, policy(attacker, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](418), RetryAfterSeconds: ptr.To[int32](1)}
	}))
	fixture(t, victim)
	create(t, policy(victim, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action, p.Spec.Shed = v1alpha1.ActionShedAll, v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](30)}
	}))
	eventually(t, func() (fixtures.ShedAnswer, bool) { a := ask(victim+".example.com", "/"); return a, a.Code == 429 })
	eventuallyPolicy(t, victim, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionReady), "True")
	})
	for range 10 { // bounded: 10 asks over a second
		if a := ask(victim+".example.com", "/"); a.Code != 429 {
			t.Fatalf("a route its Gateway rejected chose the victim's answer: %+v", a)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, ns := range []string{victim, attacker} {
		if c := condition(getPolicy(t, ns), v1alpha1.ConditionDegraded); strings.Contains(c, v1alpha1.ReasonConflict) {
			t.Fatalf("%s: %s", ns, c)
		}
	}

	t.Log("the attacker's Gateway accepts the route: the overlap is neutralized and told")
	rejections.Delete(attacker)
	eventually(t, func() (fixtures.ShedAnswer, bool) {
		a := ask(victim+".example.com", "/")
		return a, a.Code == 503 && a.RetryAfter == "120"
	})
	eventuallyPolicy(t, victim, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.Contains(condition(p, v1alpha1.ConditionDegraded), "also claimed by policy "+attacker+"/api of another namespace")
	})
}

// A route without hostnames covers its listener's hostnames, not every host: a tenant's route on
// another host overlaps nothing; one on a host the listener serves is neutralized and told.
func TestARouteWithoutHostnamesCoversItsListenersHostsOnly(t *testing.T) {
	ask := startShedServer(t)
	victim, attacker := "victim-listener", "attacker-listener"
	fixture(t, victim)
	gw := &gatewayv1.Gateway{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: victim, Name: "eg"}, gw); err != nil {
		t.Fatal(err)
	}
	gw.Spec.Listeners[0].Hostname = ptr.To(gatewayv1.Hostname("*.shop.example.net"))
	if err := k8s.Update(context.Background(), gw); err != nil {
		t.Fatal(err)
	}
	editRoute(t, victim, func(r *gatewayv1.HTTPRoute) { r.Spec.Hostnames = nil })
	create(t, policy(victim, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action, p.Spec.Shed = v1alpha1.ActionShedAll, v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](30)}
	}))
	fixture(t, attacker)
	editRoute(t, attacker, func(r *gatewayv1.HTTPRoute) { r.Spec.Hostnames = []gatewayv1.Hostname{"api.elsewhere.example.net"} })
	create(t, policy(attacker, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](418), RetryAfterSeconds: ptr.To[int32](1)}
	}))
	eventually(t, func() (fixtures.ShedAnswer, bool) { a := ask("eu.shop.example.net", "/"); return a, a.Code == 429 })
	eventually(t, func() (fixtures.ShedAnswer, bool) {
		a := ask("api.elsewhere.example.net", "/")
		return a, a.Code == 418
	})
	eventuallyPolicy(t, victim, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.HasPrefix(condition(p, v1alpha1.ConditionReady), "True") && !strings.Contains(condition(p, v1alpha1.ConditionDegraded), v1alpha1.ReasonConflict)
	})

	t.Log("the attacker moves its route onto a host the victim's listener serves")
	editRoute(t, attacker, func(r *gatewayv1.HTTPRoute) { r.Spec.Hostnames = []gatewayv1.Hostname{"eu.shop.example.net"} })
	eventually(t, func() (fixtures.ShedAnswer, bool) {
		a := ask("eu.shop.example.net", "/")
		return a, a.Code == 503 && a.RetryAfter == "120"
	})
	eventuallyPolicy(t, victim, func(p *v1alpha1.TrafficPolicy) bool {
		return strings.Contains(condition(p, v1alpha1.ConditionDegraded), "also claimed by policy "+attacker+"/api of another namespace")
	})
}
