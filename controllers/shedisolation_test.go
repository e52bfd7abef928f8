package controllers_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/utils/ptr"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/internal/shed"
)

// shedAnswer is what the shed server answers a request for host and path.
type shedAnswer struct {
	Code              int
	RetryAfter, Where string
	Body              string
}

// startShedServer runs the real shed server (its table synced from the API server, its answers
// on a loopback port) until the spec ends, and returns how to ask it.
func startShedServer(redirectHosts shed.RedirectHosts) func(host, path string) shedAnswer {
	server := shed.NewServer()
	syncCtx, stop := context.WithCancel(ctx)
	DeferCleanup(stop)
	go func() {
		defer GinkgoRecover()
		Expect(shed.SyncTable(syncCtx, cp.Config, scheme.New(), server, redirectHosts, nil)).To(Succeed())
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	addr := l.Addr().String()
	Expect(l.Close()).To(Succeed())
	go func() { _ = shed.ServeAnswers(syncCtx, addr, server) }()
	Eventually(func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err
	}).Should(Succeed())
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return func(host, path string) shedAnswer {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Host = host
		res, err := noRedirects.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return shedAnswer{res.StatusCode, res.Header.Get("Retry-After"), res.Header.Get("Location"), string(body)}
	}
}

// An attacker namespace, with only a policy left at Normal over an Ingress of its own, never
// chooses the shed answer for a victim's requests, by any host form and in
// either order of creation: the overlap gets the neutral answer, and both policies report the
// Conflict naming the other.
var _ = Describe("isolation of the shed answer", func() {
	type form struct {
		attackerHost string // "" : a catch-all (the Ingress's default backend)
		attackerPath string
		request      string // the victim's host as a client sends it
	}
	DescribeTable("by every host form",
		func(f form, attackerFirst bool) {
			victimNS, attackerNS := newNamespace(), newNamespace()
			victimHost := "api." + victimNS + ".test"
			victimIngress := ingressWithHost(victimNS, "api-gateway", victimHost)
			victim := samplePolicy(victimNS, v1alpha1.ActionShedAll)
			victim.Spec.AutoscalerRefs = nil
			victim.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](30)}

			attackerHost := strings.ReplaceAll(f.attackerHost, "VICTIM", victimNS)
			bait := ingressWithHost(attackerNS, "bait", attackerHost)
			bait.Spec.Rules[0].HTTP.Paths = bait.Spec.Rules[0].HTTP.Paths[:1]
			bait.Spec.Rules[0].HTTP.Paths[0].Path = f.attackerPath
			if attackerHost == "" {
				bait.Spec.Rules = nil
				bait.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "x", Port: networkingv1.ServiceBackendPort{Number: 80}}}
			}
			attacker := samplePolicy(attackerNS, v1alpha1.ActionNormal)
			attacker.Name, attacker.Spec.AutoscalerRefs = "steer", nil
			attacker.Spec.TargetRefs = []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "bait"}}
			attacker.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](418), RetryAfterSeconds: ptr.To[int32](1)}

			get := startShedServer(nil)
			if attackerFirst {
				create(bait, attacker)
				create(victimIngress, victim)
			} else {
				create(victimIngress, victim)
				create(bait, attacker)
			}
			request := strings.ReplaceAll(f.request, "VICTIM", victimNS)
			for _, path := range []string{"/", "/v2/users/1"} {
				Eventually(func() shedAnswer { return get(request, path) }).Should(And(HaveField("Code", 503), HaveField("RetryAfter", "120")),
					"%s%s must get the neutral answer", request, path)
			}
			Eventually(conditionOfPolicy(victimNS, "api-gateway", v1alpha1.ConditionDegraded)).Should(
				And(HavePrefix("True "+v1alpha1.ReasonConflict+": route "), ContainSubstring("is also claimed by policy "+attackerNS+"/steer of another namespace")))
			Eventually(conditionOfPolicy(attackerNS, "steer", v1alpha1.ConditionDegraded)).Should(
				ContainSubstring("is also claimed by policy " + victimNS + "/api-gateway of another namespace"))
		},
		func() []TableEntry {
			var entries []TableEntry
			for name, f := range map[string]form{
				"the same exact host": {"api.VICTIM.test", "/", "api.VICTIM.test"},
				"a wildcard covering the victim's host, at the same path": {"*.VICTIM.test", "/", "api.VICTIM.test"},
				"a wildcard covering the victim's host, at a longer path": {"*.VICTIM.test", "/v2", "api.VICTIM.test"},
				"a catch-all": {"", "/", "api.VICTIM.test"},
				"a trailing dot on the victim's host, falling to a catch-all": {"", "/", "api.VICTIM.test."},
			} {
				entries = append(entries, Entry(name+", the victim first", f, false), Entry(name+", the attacker first", f, true))
			}
			return entries
		}(),
	)
})
