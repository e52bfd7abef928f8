package traffic

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider/traefik"
	"floodgate.dev/floodgate/test/fixtures"
	"floodgate.dev/floodgate/test/trafficenv"
)

// redirectURL is where a redirected shed sends clients; its host is on the cluster's
// shed-redirect-hosts (the manager's and the shed server's).
const redirectURL = "https://" + redirectHost + "/incident"

// A target is one kind of target set up for the levers: its fixture, and how to check it is as
// it was set up.
type target struct {
	kind string
	// setUp creates the app, the target and a Normal policy api on it (edit applied), waits until
	// the app answers through Traefik, and returns the namespace and a check that the target is
	// as it was set up.
	setUp func(t *testing.T, name string, edit func(*v1alpha1.TrafficPolicy)) (ns string, unchanged func(*testing.T))
}

var targets = []target{
	{kind: "Ingress", setUp: func(t *testing.T, name string, edit func(*v1alpha1.TrafficPolicy)) (string, func(*testing.T)) {
		ns, was := ingressFixture(t, name, edit)
		return ns, func(t *testing.T) { unchanged(t, was) }
	}},
	{kind: "HTTPRoute", setUp: func(t *testing.T, name string, edit func(*v1alpha1.TrafficPolicy)) (string, func(*testing.T)) {
		ns, was := routeFixture(t, name, edit)
		return ns, func(t *testing.T) { routeUnchanged(t, ns, was) }
	}},
}

// restore pulls the policy back to Normal with kubectl floodgate, and proves on requests that
// every one gets the app again, with the target as it was set up and nothing but the app or
// shedding's answer in between.
func restore(t *testing.T, ns string, r request, shedding answer, unchanged func(*testing.T)) {
	t.Helper()
	during(t, r, []answer{shedding, app}, app, func() { floodgate(t, "restore", "api", "-n", ns, "--wait") })
	all(t, r, 200, app)
	unchanged(t)
}

// TestShedAllSendsEveryRequestToTheShedServer: on both of Traefik's providers, `kubectl floodgate
// shed` makes every request the shed server's answer (503, Retry-After 120), with no other answer
// during the flip, and `restore` gives every request back to the app.
func TestShedAllSendsEveryRequestToTheShedServer(t *testing.T) {
	for _, target := range targets {
		t.Run(target.kind, func(t *testing.T) {
			ns, unchanged := target.setUp(t, "shed-"+lower(target.kind), nil)
			r := get(ns + ".example.com")
			during(t, r, []answer{app, shedAnswer(503, 120)}, shedAnswer(503, 120), func() {
				floodgate(t, "shed", "api", "-n", ns, "--reason", "herd", "--wait")
			})
			// The shed server counts each of its answers, under the policy, the target's host
			// and the code: the evidence that the herd reaches it.
			before := shedAnswers(t, ns)
			all(t, r, 200, shedAnswer(503, 120))
			if after := shedAnswers(t, ns); after-before != 200 {
				t.Errorf("200 requests got the shed answer; the shed server counted %.0f of them", after-before)
			}
			restore(t, ns, r, shedAnswer(503, 120), unchanged)
		})
	}
}

// shedAnswers is how many 503s the shed pod counted for the policy api of ns on NS.example.com.
func shedAnswers(t *testing.T, ns string) float64 {
	t.Helper()
	n, err := trafficenv.ShedAnswers(env.ShedHealth[0], ns+"/api", ns+".example.com", 503)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestARedirectedShedAnswers302ToTheStatusPage: a ShedAll with shed.redirectURL answers every
// request 302 to the URL: the shed server on an Ingress, Traefik itself (RequestRedirect) on an
// HTTPRoute.
func TestARedirectedShedAnswers302ToTheStatusPage(t *testing.T) {
	redirected := answer("302 " + redirectURL)
	for _, target := range targets {
		t.Run(target.kind, func(t *testing.T) {
			ns, unchanged := target.setUp(t, "redirect-"+lower(target.kind), func(p *v1alpha1.TrafficPolicy) {
				p.Spec.Shed.RedirectURL = redirectURL
			})
			r := get(ns + ".example.com")
			during(t, r, []answer{app, redirected}, redirected, func() {
				floodgate(t, "shed", "api", "-n", ns, "--reason", "herd", "--wait")
			})
			all(t, r, 200, redirected)
			restore(t, ns, r, redirected, unchanged)
		})
	}
}

// TestTheAllowlistAdmitsOnlyTheRegionsListed: with `kubectl floodgate allow api AU`, a request
// whose CF-IPCountry is AU reaches the app; US, an empty header and lower-case au get the shed
// answer (codes are compared exactly: CDNs send upper case); a request without the header is
// admitted (missingRegion: Admit).
func TestTheAllowlistAdmitsOnlyTheRegionsListed(t *testing.T) {
	for _, target := range targets {
		t.Run(target.kind, func(t *testing.T) {
			ns, unchanged := target.setUp(t, "allow-"+lower(target.kind), nil)
			r := get(ns + ".example.com")
			us := r.With("CF-IPCountry", "US")
			during(t, us, []answer{app, shedAnswer(503, 120)}, shedAnswer(503, 120), func() {
				floodgate(t, "allow", "api", "AU", "-n", ns, "--reason", "AU first", "--wait")
			})
			for _, c := range []struct {
				name string
				r    request
				want answer
			}{
				{"AU", r.With("CF-IPCountry", "AU"), app},
				{"US", us, shedAnswer(503, 120)},
				{"empty", r.With("CF-IPCountry", ""), shedAnswer(503, 120)},
				{"absent", r, app},
				{"lower case", r.With("CF-IPCountry", "au"), shedAnswer(503, 120)},
			} {
				if got := send(c.r, 100); got[c.want] != 100 {
					t.Errorf("CF-IPCountry %s: want all 100 %q, got %v", c.name, c.want, got)
				}
			}
			during(t, us, []answer{shedAnswer(503, 120), app}, app, func() {
				floodgate(t, "allow", "api", "-n", ns, "--reason", "every region", "--wait")
			})
			unchanged(t)
		})
	}
}

// TestAdmitPercentAdmitsItsShare: a ramp step of admitPercent 30 admits a share of 2,000
// requests inside the binomial 95% interval around 30%, and sheds the rest.
func TestAdmitPercentAdmitsItsShare(t *testing.T) {
	for _, target := range targets {
		t.Run(target.kind, func(t *testing.T) {
			ns, unchanged := target.setUp(t, "admit-"+lower(target.kind), func(p *v1alpha1.TrafficPolicy) {
				p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{AdmitPercent: ptr.To[int32](30), Hold: metav1.Duration{Duration: time.Hour}}}}
			})
			r := get(ns + ".example.com")
			floodgate(t, "ramp", "api", "-n", ns, "--reason", "admit 30%", "--wait")
			// Settled when the share is being shed at all: a batch of 20 sees both answers.
			settleShare(t, r)
			const n, p = 2000, 0.30
			got := send(r, n)
			half := 1.96 * math.Sqrt(n*p*(1-p))
			if float64(got[app]) < n*p-half || float64(got[app]) > n*p+half || got[app]+got[shedAnswer(503, 120)] != n {
				t.Fatalf("admitPercent 30 over %d requests: want %.0f±%.0f app and the rest shed, got %v", n, n*p, half, got)
			}
			t.Logf("admitPercent 30 over %d requests: %v", n, got)
			// Status says Traefik keeps the share by weighted round robin: then it is exact over
			// whole rounds (10 requests, one client).
			policy := fixtures.EventuallyPolicy(t, k8s, client.ObjectKey{Namespace: ns, Name: "api"}, func(p *v1alpha1.TrafficPolicy) bool {
				return len(p.Status.Targets) == 1 && p.Status.Targets[0].Capabilities != nil
			})
			if sel := policy.Status.Targets[0].Capabilities.AdmitPercentSelection; sel != "WeightedRoundRobin" || got[app] != n*3/10 {
				t.Errorf("status says the share is chosen %q; clients got %v", sel, got)
			}
			restore(t, ns, r, shedAnswer(503, 120), unchanged)
		})
	}
}

// settleShare waits until a batch of 20 requests gets both the app and the shed answer.
func settleShare(t *testing.T, r request) {
	t.Helper()
	var last tally
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if last = send(r, 20); last[app] > 0 && last[shedAnswer(503, 120)] > 0 {
			return
		}
	}
	t.Fatalf("a share was never shed within a minute; the last 20 requests got %v", last)
}

func lower(kind string) string {
	if kind == "HTTPRoute" {
		return "route"
	}
	return "ingress"
}

// TestAPerClientLimitAdmitsItsRateAndAnswersTheRest429: a ramp step of
// perClientRequestsPerSecond 20 admits, once the limiter's burst is spent, about 20 requests a
// second from one client, and answers the rest 429 with Retry-After; status says so (the target
// is on Traefik, written by Floodgate's Traefik provider, answered 429). On an Ingress the limit
// is limit-rps, which Traefik's NGINX provider reads (a burst of 5× the rate); on an HTTPRoute it
// is a Traefik Middleware the policy owns (a burst of one second's worth), referenced from the
// rule, and gone after the restore.
func TestAPerClientLimitAdmitsItsRateAndAnswersTheRest429(t *testing.T) {
	for _, target := range targets {
		t.Run(target.kind, func(t *testing.T) {
			ns, unchanged := target.setUp(t, "rate-"+lower(target.kind), func(p *v1alpha1.TrafficPolicy) {
				p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{PerClientRequestsPerSecond: ptr.To[int32](20), Hold: metav1.Duration{Duration: time.Hour}}}}
			})
			// Armed before the incident: the API server accepted the step's writes (on an
			// HTTPRoute, the Middleware and the references to it) in a dry run.
			fixtures.EventuallyPolicy(t, k8s, client.ObjectKey{Namespace: ns, Name: "api"}, func(p *v1alpha1.TrafficPolicy) bool {
				return strings.HasPrefix(fixtures.Condition(p, v1alpha1.ConditionArmed), "True ")
			})
			r := get(ns + ".example.com")
			limiting := func() {
				settleWhen(t, r, fmt.Sprintf("got %q", rateLimited), func(got tally) bool { return got[rateLimited] > 0 })
			}
			duringUntil(t, r, []answer{app, rateLimited}, limiting, func() {
				floodgate(t, "ramp", "api", "-n", ns, "--reason", "20 rps per client", "--wait")
			})
			steadyRate(t, r, 20)
			p := fixtures.EventuallyPolicy(t, k8s, client.ObjectKey{Namespace: ns, Name: "api"}, func(p *v1alpha1.TrafficPolicy) bool {
				return len(p.Status.Targets) == 1 && p.Status.Targets[0].Capabilities != nil
			})
			st := p.Status.Targets[0]
			if c := st.Capabilities; c.Provider != "traefik" || c.RateLimitStatusCode != 429 || !slices.Equal(st.DataPlanes, []string{"traefik"}) ||
				rateLimited != shedAnswer(int(c.RateLimitStatusCode), 1) || st.Applied.PerClientRequestsPerSecond != 20 ||
				c.RateLimitBurstMultiplier != burst[target.kind] {
				t.Errorf("clients got %q; status says data planes %v, provider %s, rate-limited requests get %d after a burst of %d× the rate, applied %+v",
					rateLimited, st.DataPlanes, c.Provider, c.RateLimitStatusCode, c.RateLimitBurstMultiplier, st.Applied)
			}
			restore(t, ns, r, rateLimited, unchanged)
			if target.kind == "HTTPRoute" {
				middlewareOutlivesItsReferences(t, ns, r, unchanged)
			}
		})
	}
}

// middlewareOutlivesItsReferences: on an HTTPRoute, the Middleware of the policy's limit stands
// (armed, unreferenced) after the restore, so pulling the limit again only adds references; once
// the policy has no limiting step, it goes after Traefik dropped its references, with no answer
// but the app's or the limit's in between (Traefik lacking a Middleware a route references
// answers 404).
func middlewareOutlivesItsReferences(t *testing.T, ns string, r request, unchanged func(*testing.T)) {
	t.Helper()
	key := client.ObjectKey{Namespace: ns, Name: traefik.MiddlewareName("api", "api")}
	if err := k8s.Get(context.Background(), key, middleware()); err != nil {
		t.Fatalf("the policy still has a limiting step, so its Middleware stands ready: %v", err)
	}
	limiting := func() {
		settleWhen(t, r, fmt.Sprintf("got %q", rateLimited), func(got tally) bool { return got[rateLimited] > 0 })
	}
	duringUntil(t, r, []answer{app, rateLimited}, limiting, func() {
		floodgate(t, "ramp", "api", "-n", ns, "--reason", "20 rps per client again", "--wait")
	})
	during(t, r, []answer{rateLimited, app}, app, func() {
		p := &v1alpha1.TrafficPolicy{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, p); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(p.DeepCopy()) // no resourceVersion: the controller writes status meanwhile
		p.Spec.Action, p.Spec.Ramp = v1alpha1.ActionNormal, nil
		if err := k8s.Patch(context.Background(), p, patch); err != nil {
			t.Fatal(err)
		}
	})
	fixtures.Eventually(t, func() (error, bool) {
		err := k8s.Get(context.Background(), key, middleware())
		return err, apierrors.IsNotFound(err)
	})
	unchanged(t)
}

// burst is the burst multiplier of each kind's limit on Traefik: the NGINX provider's default
// for limit-rps, one second's worth on the Middleware Floodgate writes.
var burst = map[string]int32{"Ingress": 5, "HTTPRoute": 1}

// rateLimited is what Traefik answers a client over its limit.
var rateLimited = shedAnswer(429, 1)

// middleware is an empty Traefik Middleware.
func middleware() *unstructured.Unstructured {
	mw := &unstructured.Unstructured{}
	mw.SetGroupVersionKind(traefik.MiddlewareGVK)
	return mw
}

// steadyRate sends requests as fast as one client does, counted per second, until a second admits
// rps (±5) and the rest are rate limited, then proves that the next three seconds do too. The
// first seconds may admit the limiter's burst on top of the rate, and so may the first second
// after Traefik reloads its configuration (its limiter starts afresh).
func steadyRate(t *testing.T, r request, rps int) {
	t.Helper()
	inRate := func(got tally) bool {
		return got[app] >= rps-5 && got[app] <= rps+5 && got[app]+got[rateLimited] == got.total()
	}
	second := func() tally {
		got := tally{}
		for end := time.Now().Add(time.Second); time.Now().Before(end) && got.total() < 20000; {
			got[do(r)]++
		}
		return got
	}
	for n := 1; ; n++ {
		got := second()
		t.Logf("second %d: %v", n, got)
		if inRate(got) {
			break
		}
		if n == 30 {
			t.Fatalf("30 seconds of requests and none admitted the rate of %d a second; the last: %v", rps, got)
		}
	}
	for n := 1; n <= 3; n++ {
		if got := second(); !inRate(got) {
			t.Errorf("steady second %d of a %d rps limit: want %d±5 app and the rest %q, got %v", n, rps, rps, rateLimited, got)
		} else {
			t.Logf("steady second %d: %v", n, got)
		}
	}
}

// TestAMiddlewareGoesWithTheRouteDroppedFromThePolicy: the Middleware that stands armed for a
// route goes when the policy stops naming the route, and the route is as it was.
func TestAMiddlewareGoesWithTheRouteDroppedFromThePolicy(t *testing.T) {
	ns, was := routeFixture(t, "drop-route", func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{PerClientRequestsPerSecond: ptr.To[int32](20), Hold: metav1.Duration{Duration: time.Hour}}}}
	})
	key := client.ObjectKey{Namespace: ns, Name: traefik.MiddlewareName("api", "api")}
	fixtures.Eventually(t, func() (error, bool) {
		err := k8s.Get(context.Background(), key, middleware())
		return err, err == nil
	})
	p := &v1alpha1.TrafficPolicy{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, p); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(p.DeepCopy()) // no resourceVersion: the controller writes status meanwhile
	p.Spec.TargetRefs[0].Name = "another"
	if err := k8s.Patch(context.Background(), p, patch); err != nil {
		t.Fatal(err)
	}
	fixtures.Eventually(t, func() (error, bool) {
		err := k8s.Get(context.Background(), key, middleware())
		return err, apierrors.IsNotFound(err)
	})
	routeUnchanged(t, ns, was)
}

// TestDeletingAPolicyWhileItsLimitHoldsRestoresTheRouteBeforeTheMiddlewareGoes: a policy deleted
// mid-limit keeps its finalizer until Traefik applied the route without the Middleware's
// references, then deletes the Middleware itself (envtest runs no garbage collector): no request
// gets anything but the limit's answer or the app's (a 404 would mean the Middleware went first).
func TestDeletingAPolicyWhileItsLimitHoldsRestoresTheRouteBeforeTheMiddlewareGoes(t *testing.T) {
	ns, was := routeFixture(t, "delete-limit", func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{PerClientRequestsPerSecond: ptr.To[int32](20), Hold: metav1.Duration{Duration: time.Hour}}}}
	})
	r := get(ns + ".example.com")
	limiting := func() {
		settleWhen(t, r, fmt.Sprintf("got %q", rateLimited), func(got tally) bool { return got[rateLimited] > 0 })
	}
	duringUntil(t, r, []answer{app, rateLimited}, limiting, func() {
		floodgate(t, "ramp", "api", "-n", ns, "--reason", "20 rps per client", "--wait")
	})
	during(t, r, []answer{rateLimited, app}, app, func() {
		if err := k8s.Delete(context.Background(), &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}}); err != nil {
			t.Fatal(err)
		}
	})
	for _, obj := range []client.Object{middlewareNamed(ns, traefik.MiddlewareName("api", "api")),
		&v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}}} {
		fixtures.Eventually(t, func() (error, bool) {
			err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
			return err, apierrors.IsNotFound(err)
		})
	}
	routeUnchanged(t, ns, was)
}

// middlewareNamed is an empty Traefik Middleware of that name.
func middlewareNamed(ns, name string) *unstructured.Unstructured {
	mw := middleware()
	mw.SetNamespace(ns)
	mw.SetName(name)
	return mw
}
