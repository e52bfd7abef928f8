package gate

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// hostAddress is this machine's first non-loopback IPv4 address: where an in-cluster Service
// would be, as far as the guard is concerned.
func hostAddress(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address to serve an allowed gate on")
	return netip.Addr{}
}

// serveOn starts a server on addr:0 and counts its requests.
func serveOn(t *testing.T, addr netip.Addr, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &hits
}

func webhook(url string) v1alpha1.Gate {
	return v1alpha1.Gate{Name: "confirm", Webhook: &v1alpha1.WebhookGate{URL: url, Timeout: &metav1.Duration{Duration: 3e9}}}
}

func TestTheEgressGuardRefusesLoopbackLinkLocalAndTheAPIServerAtDialTime(t *testing.T) {
	host := hostAddress(t)
	loop, loopHits := serveOn(t, netip.MustParseAddr("127.0.0.1"), func(w http.ResponseWriter, _ *http.Request) {})
	guarded := &Reader{HTTP: NewHTTPClient(&EgressGuard{Denied: []netip.Addr{host}})}
	ctx := context.Background()
	port := loop.Listener.Addr().(*net.TCPAddr).Port
	for _, url := range []string{
		loop.URL,                                   // loopback
		"http://localhost:" + itoa(port) + "/",     // a name that resolves to loopback: checked after resolution
		"http://[::1]:" + itoa(port) + "/",         // IPv6 loopback
		"http://169.254.169.254/latest/meta-data/", // the cloud metadata service (link-local)
		"http://[fe80::1]:80/",                     // IPv6 link-local
		"http://" + host.String() + ":6443/",       // the API server's own address
		"http://0.0.0.0:" + itoa(port) + "/",       // unspecified
	} {
		got := guarded.Read(ctx, &v1alpha1.TrafficPolicy{}, webhook(url))
		if got.Verdict != v1alpha1.VerdictUnknown || !strings.HasSuffix(got.Reason, "refused by the gate egress policy") {
			t.Errorf("%s: got %+v, want Unknown refused by the gate egress policy", url, got)
		}
	}
	if n := loopHits.Load(); n != 0 {
		t.Fatalf("the loopback server was reached %d times", n)
	}
}

// Every blocked address is refused in every form a stack or a gateway unwraps: IPv4-mapped,
// NAT64 (64:ff9b::/96) and 6to4 (2002::/16); and the metadata services off the link-local range.
func TestTheEgressGuardRefusesEveryFormOfABlockedAddress(t *testing.T) {
	apiServer := netip.MustParseAddr("10.0.0.1")
	guard := &EgressGuard{Denied: []netip.Addr{apiServer}}
	for _, blocked := range []string{"127.0.0.1", "127.1.2.3", "169.254.169.254", "0.0.0.0", "0.1.2.3", "224.0.0.1", "100.100.100.200", "168.63.129.16", "10.0.0.1"} {
		v4 := netip.MustParseAddr(blocked).As4()
		for _, form := range []string{
			blocked,
			"::ffff:" + blocked,
			fmt.Sprintf("64:ff9b::%02x%02x:%02x%02x", v4[0], v4[1], v4[2], v4[3]),
			fmt.Sprintf("2002:%02x%02x:%02x%02x::1", v4[0], v4[1], v4[2], v4[3]),
		} {
			if guard.Allows(netip.MustParseAddr(form)) {
				t.Errorf("%s (a form of %s) is allowed", form, blocked)
			}
		}
	}
	for _, blocked := range []string{"::1", "fe80::1", "ff02::1", "::", "fd00:ec2::254"} {
		if guard.Allows(netip.MustParseAddr(blocked)) {
			t.Errorf("%s is allowed", blocked)
		}
	}
	for _, allowed := range []string{"10.96.0.20", "::ffff:10.96.0.20", "64:ff9b::a60:14", "2002:a60:14::1", "fd12::1", "100.100.100.201"} {
		if !guard.Allows(netip.MustParseAddr(allowed)) {
			t.Errorf("%s (in-cluster) is refused", allowed)
		}
	}
}

func TestTheGuardedClientReachesInClusterAddressesFollowsNoRedirectCapsAnswersAndHidesDialErrors(t *testing.T) {
	host := hostAddress(t)
	guarded := &Reader{HTTP: NewHTTPClient(&EgressGuard{})}
	ctx := context.Background()

	ok, okHits := serveOn(t, host, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	if got := guarded.Read(ctx, &v1alpha1.TrafficPolicy{}, webhook(ok.URL)); got.Verdict != v1alpha1.VerdictPass || okHits.Load() != 1 {
		t.Fatalf("an address the guard allows (an in-cluster Service): got %+v, %d requests", got, okHits.Load())
	}

	target, targetHits := serveOn(t, host, func(w http.ResponseWriter, _ *http.Request) {})
	redirect, _ := serveOn(t, host, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target.URL, http.StatusFound) })
	if got := guarded.Read(ctx, &v1alpha1.TrafficPolicy{}, webhook(redirect.URL)); got.Verdict != v1alpha1.VerdictFail || got.Reading != "HTTP 302" || targetHits.Load() != 0 {
		t.Fatalf("a redirect is an answer, never followed: got %+v, the target was reached %d times", got, targetHits.Load())
	}

	huge, _ := serveOn(t, host, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"scalar","result":[1,"` + strings.Repeat("9", 2*MaxResponseBytes) + `"]}}`))
	})
	prom := v1alpha1.Gate{Name: "errors", Prometheus: &v1alpha1.PrometheusGate{Address: huge.URL, Query: "vector(1)", Operator: v1alpha1.OperatorLessThan, Threshold: "1"}}
	if got := guarded.Read(ctx, &v1alpha1.TrafficPolicy{}, prom); got.Verdict != v1alpha1.VerdictUnknown || !strings.Contains(got.Reason, "larger than") {
		t.Fatalf("an answer past the cap: got %+v", got)
	}

	l, err := net.Listen("tcp", netip.AddrPortFrom(host, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	got := guarded.Read(ctx, &v1alpha1.TrafficPolicy{}, webhook("http://"+closed+"/"))
	if got.Verdict != v1alpha1.VerdictUnknown || !strings.HasSuffix(got.Reason, "could not connect") || strings.Contains(got.Reason, "refused") {
		t.Fatalf("a closed port: got %+v, want Unknown saying only that it could not connect", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
