package controllers_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/scheme"
)

// Isolation: one tenant's slow gate never delays another tenant's lever. Gates are read apart
// from the reconcile pass, so 20 policies whose webhooks answer only after the longest timeout
// allowed leave a ShedAll elsewhere as fast as it is with none.
func TestAShedAllBeside20PoliciesWhoseWebhookGatesHangForTheLongestTimeout(t *testing.T) {
	t.Run("is applied within twice its unloaded p99", func(t *testing.T) {
		g := NewWithT(t)
		const flips, sleepers = 30, 20
		measured := newNamespace(t)
		policy := samplePolicy(measured, v1alpha1.ActionNormal)
		policy.Spec.AutoscalerRefs = nil
		create(t, sampleIngress(measured), policy)
		g.Eventually(phaseOf(t, measured, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))

		unloaded := shedLatencies(t, measured, flips)

		t.Log("20 policies in another namespace ramp with a webhook gate that answers after 30s, read every second")
		var inFlight atomic.Int32
		release := make(chan struct{})
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inFlight.Add(1)
			defer inFlight.Add(-1)
			select {
			case <-release:
			case <-r.Context().Done():
			case <-time.After(35 * time.Second):
			}
			w.WriteHeader(http.StatusOK)
		}))
		t.Cleanup(hook.Close)
		t.Cleanup(func() { close(release) })
		tenant := newNamespace(t)
		for i := range sleepers {
			name := fmt.Sprintf("slow-%02d", i)
			slow := samplePolicy(tenant, v1alpha1.ActionRamp)
			slow.Name, slow.Spec.AutoscalerRefs = name, nil
			slow.Spec.TargetRefs = []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: name}}
			slow.Spec.Ramp.Gate = v1alpha1.GateSettings{PassFor: &metav1.Duration{Duration: time.Second}, Interval: &metav1.Duration{Duration: time.Second}}
			slow.Spec.Ramp.Steps[0].Gates = []v1alpha1.Gate{{Name: "confirm", Webhook: &v1alpha1.WebhookGate{
				URL: hook.URL + "/" + name, Timeout: &metav1.Duration{Duration: 30 * time.Second}}}}
			create(t, ingressWithHost(tenant, name, name+".example.com"), slow)
		}
		g.Eventually(inFlight.Load).Should(BeEquivalentTo(sleepers), "every slow gate is being read")
		for i := range sleepers {
			g.Eventually(progressOf(t, tenant, fmt.Sprintf("slow-%02d", i))).Should(Equal("Ramping 1/3"), "the slow policies' own passes are done")
		}

		loaded := shedLatencies(t, measured, flips)
		g.Expect(inFlight.Load()).To(BeEquivalentTo(sleepers), "the slow gates were still hanging while the lever was measured")

		p99Unloaded, p99Loaded := percentile(unloaded, 99), percentile(loaded, 99)
		report := fmt.Sprintf("ShedAll applied (flip → canary at weight 100), %d flips each: unloaded p50 %s p99 %s; beside %d hanging gates p50 %s p99 %s",
			flips, percentile(unloaded, 50), p99Unloaded, sleepers, percentile(loaded, 50), p99Loaded)
		t.Log(report)
		fmt.Println(report)
		g.Expect(p99Loaded).To(BeNumerically("<=", 2*p99Unloaded), report)
	})
}

// shedLatencies flips a policy to ShedAll and back n times and returns, for each ShedAll, the time
// from the flip until a watch sees its canary at weight 100.
func shedLatencies(t testing.TB, ns string, n int) []time.Duration {
	g := NewWithT(t)
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: scheme.New()})
	g.Expect(err).NotTo(HaveOccurred())
	var out []time.Duration
	for range n {
		w, err := wc.Watch(ctx, &networkingv1.IngressList{}, client.InNamespace(ns))
		g.Expect(err).NotTo(HaveOccurred())
		start := time.Now()
		setAction(t, ns, "api-gateway", v1alpha1.ActionShedAll)
		g.Expect(waitFor(w, func(ing *networkingv1.Ingress) bool {
			return ing.Name == canaryName && ing.Annotations[ingressnginx.AnnotationWeight] == "100"
		})).To(BeTrue(), "the canary reached weight 100")
		out = append(out, time.Since(start))
		w.Stop()

		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
	}
	return out
}

func waitFor(w watch.Interface, ok func(*networkingv1.Ingress) bool) bool {
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, open := <-w.ResultChan():
			if !open {
				return false
			}
			if ing, isIngress := ev.Object.(*networkingv1.Ingress); isIngress && ev.Type != watch.Deleted && ok(ing) {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

func percentile(samples []time.Duration, p int) time.Duration {
	s := slices.Clone(samples)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)].Round(100 * time.Microsecond)
}
