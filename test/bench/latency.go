package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/test/trafficenv"
)

// --- (i) the lever's real latency, through Traefik ------------------------------------------

var (
	leverFlips = flag.Int("lever-flips", 10, "(i) flips of each lever through Traefik")
	leverRPS   = flag.Int("lever-rps", 200, "(i) steady requests a second through each Traefik")
	// leverQuiet is how long every answer must be the new one before a flip counts as done: more
	// than Traefik's default throttle (2 s), so a late old answer is not missed.
	leverQuiet = flag.Duration("lever-quiet", 3*time.Second, "(i) how long only new answers end a flip")
)

// The throttles Traefik runs with: its default, and the low one test/traffic uses.
var throttles = []time.Duration{2 * time.Second, 100 * time.Millisecond}

// sample is one request of the steady load: when it was sent and what it got.
type sample struct {
	sent   time.Time
	answer trafficenv.Answer
}

// load sends a steady rate of requests through one Traefik and keeps every answer.
type load struct {
	proxy   string
	request atomic.Pointer[trafficenv.Request]
	mu      sync.Mutex
	samples []sample
}

func (l *load) run(ctx context.Context, rps int) {
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			sent := time.Now()
			a := trafficenv.Do(l.proxy, *l.request.Load())
			l.mu.Lock()
			l.samples = append(l.samples, sample{sent, a})
			l.mu.Unlock()
		}
	}
}

// since are the samples sent at or after t.
func (l *load) since(t time.Time) []sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.samples) - 1; i >= 0; i-- {
		if l.samples[i].sent.Before(t) {
			return append([]sample(nil), l.samples[i+1:]...)
		}
	}
	return append([]sample(nil), l.samples...)
}

// flipTimes are what one flip did to one Traefik's clients.
type flipTimes struct {
	first, full time.Duration
	others      int
}

// measure reads a flip from its samples since t0: the first new answer, and when every answer
// became the new one (the send time of the first new answer after the last that was not), from
// t0; and how many answers were neither old nor new. done is false until the new answer has
// held for quiet.
func measure(samples []sample, t0 time.Time, old, new trafficenv.Answer, quiet time.Duration) (ft flipTimes, done bool) {
	firstNew, lastNotNew := -1, -1
	for i, s := range samples {
		switch {
		case s.answer == new:
			if firstNew < 0 {
				firstNew = i
			}
		case s.answer == old:
			lastNotNew = i
		default:
			lastNotNew = i
			ft.others++
		}
	}
	full := lastNotNew + 1
	if firstNew < 0 || full >= len(samples) || samples[len(samples)-1].sent.Sub(samples[full].sent) < quiet {
		return ft, false
	}
	ft.first, ft.full = samples[firstNew].sent.Sub(t0), samples[full].sent.Sub(t0)
	return ft, true
}

// lever is one flip of the bench: how it is pulled, and the answers it turns into each other.
type lever struct {
	name string
	// prepare runs before the clock starts (nil: nothing).
	prepare  func() error
	pull     func() error
	old, new trafficenv.Answer
	request  trafficenv.Request
}

func (x *b) leverLatency() error {
	ctrl.SetLogger(logr.Discard()) // the in-process manager's logs
	env, err := trafficenv.Start(trafficenv.Options{Throttles: throttles})
	defer env.Close()
	if err != nil {
		return err
	}
	ns, floorNS := "bench-i", "bench-i-floor"
	objs := appObjects(ns, env.Host.PeerAddress)
	objs = append(objs, benchIngress(ns, "api", nil, "app"),
		&v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs: []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "api"}},
			Action:     v1alpha1.ActionNormal,
			Ramp:       &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{AllowRegions: []string{"AU"}, Hold: metav1.Duration{Duration: time.Hour}}}},
			// Confirmed through the first Traefik (the default throttle), the app probed too.
			Confirm: &v1alpha1.ConfirmSpec{Address: "http://" + env.Proxies[0], ProbeApplication: true},
		}})
	// The floor: what a human does by hand, a canary Ingress to the shed server whose weight
	// kubectl annotate sets; Traefik's own time to apply an annotation.
	objs = append(objs, appObjects(floorNS, env.Host.PeerAddress)...)
	objs = append(objs, benchIngress(floorNS, "api", nil, "app"), benchIngress(floorNS, "unrelated", nil, "app"),
		benchIngress(floorNS, "api-canary", map[string]string{
			"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "0"}, "shed"),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shed", Namespace: floorNS}, Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(manager.DefaultShed.Port)}}}},
		endpointSlice(floorNS, "shed", env.Host.HostAddress, manager.DefaultShed.Port))
	for _, o := range objs {
		if err := env.Client.Create(x.ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	shed := trafficenv.ShedAnswer(503, 120)
	api, floor := trafficenv.Get(ns+".example.com").With("CF-IPCountry", "US"), trafficenv.Get(floorNS+".example.com")
	floodgate := func(args ...string) func() error {
		return func() error { _, err := env.Floodgate(append(args, "-n", ns)...); return err }
	}
	annotate := func(weight string) func() error {
		return func() error {
			_, err := env.Kubectl("annotate", "--overwrite", "-n", floorNS, "ingress", "api-canary", "nginx.ingress.kubernetes.io/canary-weight="+weight)
			return err
		}
	}
	// An unrelated change of Traefik's configuration (the path of another Ingress): Traefik
	// publishes a configuration, then holds the next one back for its throttle (a change that
	// leaves the configuration as it was, an annotation it does not read, is not one).
	unrelated := 0
	unrelatedChange := func() error {
		unrelated++
		patch := fmt.Sprintf(`[{"op":"replace","path":"/spec/rules/0/http/paths/0/path","value":"/v%d"}]`, unrelated)
		if _, err := env.Kubectl("patch", "-n", floorNS, "ingress", "unrelated", "--type=json", "-p", patch); err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		return nil
	}
	round := []lever{
		{"shed", nil, floodgate("shed", "api", "--reason", "bench"), trafficenv.App, shed, api},
		{"restore", nil, floodgate("restore", "api"), shed, trafficenv.App, api},
		{"ramp step (allow AU; a US client)", nil, floodgate("ramp", "api", "--reason", "bench"), trafficenv.App, shed, api},
		{"restore", nil, floodgate("restore", "api"), shed, trafficenv.App, api},
		{"shed 0.5 s after an unrelated Ingress change", unrelatedChange, floodgate("shed", "api", "--reason", "bench"), trafficenv.App, shed, api},
		{"", nil, floodgate("restore", "api"), shed, trafficenv.App, api}, // back, untimed
		{"floor: kubectl annotate canary-weight=100", nil, annotate("100"), trafficenv.App, shed, floor},
		{"", nil, annotate("0"), shed, trafficenv.App, floor}, // back, untimed
	}

	ctx, stop := context.WithCancel(x.ctx)
	defer stop()
	loads := make([]*load, len(env.Proxies))
	var wg sync.WaitGroup
	for i, p := range env.Proxies {
		loads[i] = &load{proxy: p}
		loads[i].request.Store(&api)
		wg.Add(1)
		go func() { defer wg.Done(); loads[i].run(ctx, *leverRPS) }()
	}
	defer wg.Wait()
	defer stop()
	// Until both Traefiks serve the app on both hosts.
	for _, r := range []trafficenv.Request{floor, api} {
		for _, l := range loads {
			l.request.Store(&r)
		}
		if _, err := awaitFlip(loads, time.Now(), trafficenv.Answer("none"), trafficenv.App, time.Minute); err != nil {
			return fmt.Errorf("the app never answered through Traefik: %w", err)
		}
	}

	type series struct {
		first, full []time.Duration
		others      int
		commands    []time.Duration
		confirmed   []time.Duration
	}
	results := map[string][]*series{} // lever → per throttle
	var order []string
	for n := range *leverFlips {
		for _, lv := range round {
			for _, l := range loads {
				l.request.Store(&lv.request)
			}
			if lv.prepare != nil {
				if err := lv.prepare(); err != nil {
					return fmt.Errorf("flip %d, before %s: %w", n, lv.name, err)
				}
			}
			t0 := time.Now()
			if err := lv.pull(); err != nil {
				return fmt.Errorf("flip %d, %s: %w", n, lv.name, err)
			}
			command := time.Since(t0)
			var confirmed chan time.Duration
			if lv.name != "" && !strings.HasPrefix(lv.name, "floor") {
				confirmed = make(chan time.Duration, 1)
				go func() {
					confirmed <- awaitConfirmed(x.ctx, env.Client, client.ObjectKey{Namespace: ns, Name: "api"}, t0)
				}()
			}
			times, err := awaitFlip(loads, t0, lv.old, lv.new, 2*time.Minute)
			if err != nil {
				return fmt.Errorf("flip %d, %s: %w", n, lv.name, err)
			}
			var confirmedAfter time.Duration
			if confirmed != nil {
				if confirmedAfter = <-confirmed; confirmedAfter < 0 {
					return fmt.Errorf("flip %d, %s: not confirmed within %s", n, lv.name, confirmWait)
				}
			}
			if lv.name == "" {
				continue
			}
			if results[lv.name] == nil {
				order = append(order, lv.name)
				for range loads {
					results[lv.name] = append(results[lv.name], &series{})
				}
			}
			for i, ft := range times {
				s := results[lv.name][i]
				s.first, s.full, s.others = append(s.first, ft.first), append(s.full, ft.full), s.others+ft.others
				s.commands = append(s.commands, command)
				if i == 0 && confirmed != nil {
					s.confirmed = append(s.confirmed, confirmedAfter)
				}
			}
		}
	}
	total := 0
	for _, l := range loads {
		total += len(l.since(time.Time{}))
	}
	for _, name := range order {
		for i, s := range results[name] {
			x.add("i", fmt.Sprintf("%s → clients, Traefik throttle %s, %d flips: first new answer p50 / max", name, throttles[i], len(s.first)),
				fmt.Sprintf("%s / %s", ms(percentile(s.first, 50)), ms(percentile(s.first, 100))), "", true)
			x.add("i", fmt.Sprintf("… every answer new: p50 / max (other answers during the flips: %d)", s.others),
				fmt.Sprintf("%s / %s", ms(percentile(s.full, 50)), ms(percentile(s.full, 100))), "no other answer", s.others == 0)
			if i == 0 {
				x.add("i", "… the command itself (start to exit): p50", ms(percentile(s.commands, 50)), "", true)
				if len(s.confirmed) > 0 {
					x.add("i", fmt.Sprintf("… Confirmed True (probes through the Traefik at %s): p50 / max", throttles[0]),
						fmt.Sprintf("%s / %s", ms(percentile(s.confirmed, 50)), ms(percentile(s.confirmed, 100))), "", true)
				}
			}
		}
	}
	x.notes = append(x.notes, fmt.Sprintf("(i) %d requests a second through each of two Traefik v3.7.13 (providersThrottleDuration %s and %s) at once, %d requests in all; "+
		"a flip is timed from the start of the command to the send time of the first request that got the new answer, and of the first after which every answer was new for %s. "+
		"The floor is the same Traefik applying a canary-weight a human writes with kubectl annotate. "+
		"Confirmed True is timed from the same start to the first read (every 10 ms) of the policy saying Confirmed True for the request the command made: "+
		"probes through the first Traefik, a round every 200 ms until the lever is confirmed, at most 10 probes a second (the ramp step's round has 3).", *leverRPS, throttles[0], throttles[1], total, *leverQuiet))
	return nil
}

// confirmWait bounds how long a flip waits for its Confirmed condition.
const confirmWait = time.Minute

// awaitConfirmed is how long after t0 the policy's lever was confirmed: the first time the
// policy is read with the request the command made handled and Confirmed True (the pass that
// handles a request starts confirming its lever afresh); -1 when not within confirmWait. Read
// every 10 ms from the API server.
func awaitConfirmed(ctx context.Context, c client.Client, key client.ObjectKey, t0 time.Time) time.Duration {
	for time.Since(t0) < confirmWait && ctx.Err() == nil {
		p := &v1alpha1.TrafficPolicy{}
		if err := c.Get(ctx, key, p); err == nil {
			token := p.Annotations[v1alpha1.RequestAnnotation]
			cond := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionConfirmed)
			if token != "" && p.Status.LastHandledRequest == token && cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == p.Generation {
				return time.Since(t0)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1
}

// awaitFlip waits until every load's answers since t0 turned from old to new and held (quiet),
// and returns each one's times.
func awaitFlip(loads []*load, t0 time.Time, old, new trafficenv.Answer, timeout time.Duration) ([]flipTimes, error) {
	deadline := time.Now().Add(timeout)
	for {
		out := make([]flipTimes, len(loads))
		all := true
		for i, l := range loads {
			ft, done := measure(l.since(t0), t0, old, new, *leverQuiet)
			out[i], all = ft, all && done
		}
		if all {
			return out, nil
		}
		if time.Now().After(deadline) {
			s := loads[0].since(t0)
			last := trafficenv.Answer("none")
			if len(s) > 0 {
				last = s[len(s)-1].answer
			}
			return nil, fmt.Errorf("answers did not turn from %q to %q within %s (the last: %q)", old, new, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// appObjects are a namespace with the app's Service and its EndpointSlice (the app in the test
// host).
func appObjects(ns, appAddress string) []client.Object {
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(trafficenv.AppPort)}}}},
		endpointSlice(ns, "app", appAddress, trafficenv.AppPort),
	}
}

func endpointSlice(ns, service, address string, port int32) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: service + "-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{address}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port)}},
	}
}

// benchIngress is an Ingress of Traefik's NGINX class for NS.example.com / to service.
func benchIngress(ns, name string, annotations map[string]string, service string) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr.To(trafficenv.IngressClass), Rules: []networkingv1.IngressRule{{
			Host: ns + ".example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
}
