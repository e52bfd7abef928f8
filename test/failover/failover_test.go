// Package failover runs the real manager binary, as separate processes, against an embedded
// control plane: two managers with leader election, the leader killed mid-ramp; and a manager
// signalled before it could start.
package failover

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/test/fixtures"
)

var managerBin string

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "floodgate-failover")
	if err != nil {
		panic(err)
	}
	if managerBin, err = fixtures.Build(dir, "cmd/manager"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// process is a manager binary running.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *strings.Builder
}

func startManager(t *testing.T, kubeconfig string, extra ...string) *process {
	t.Helper()
	args := append([]string{"--kubeconfig", kubeconfig, "--metrics-bind-address=0", "--health-probe-bind-address=0"}, extra...)
	cmd := exec.Command(managerBin, args...)
	log := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: log}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("manager %d log:\n%s", cmd.Process.Pid, tail(log.String(), 40))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// TestASignalledManagerExitsWithinItsTimeoutAgainstAnAPIServerThatNeverAnswers: SIGTERM one
// second after start, while the API server answers discovery but never answers a list or a watch
// (an overloaded control plane: the caches cannot sync): the process exits within its graceful
// shutdown timeout and burns no core. (controller-runtime v0.25.2 alone loops on the cancelled
// context while its caches start, at 100% of a core, until killed.)
func TestASignalledManagerExitsWithinItsTimeoutAgainstAnAPIServerThatNeverAnswers(t *testing.T) {
	cp, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	kubeconfig := overloaded(t, cp.Config)
	const timeout = 5 * time.Second
	p := startManager(t, kubeconfig, "--graceful-shutdown-timeout="+timeout.String())
	time.Sleep(time.Second)
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("still running %s after SIGTERM (graceful shutdown timeout %s)", timeout, timeout)
	}
	took := time.Since(signalled)
	cpu := p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	lived := time.Since(signalled) + time.Second
	t.Logf("exited %s after SIGTERM; CPU %s over %s alive", took.Round(time.Millisecond), cpu.Round(time.Millisecond), lived.Round(time.Millisecond))
	if cpu > lived/2 {
		t.Fatalf("used %s of CPU in %s: a core was burnt", cpu, lived)
	}
}

// TestTheOtherManagerTakesOverMidRampKeepingTheStepTheHoldLeftAndWritingNothingTwice kills the
// leader (SIGKILL) mid-ramp, then stops the next leader gracefully (SIGTERM): each time the other
// manager takes over, the ramp stays at its step and moves on when the hold that was left ends,
// and no object is written more than once per transition.
func TestTheOtherManagerTakesOverMidRampKeepingTheStepTheHoldLeftAndWritingNothingTwice(t *testing.T) {
	_, kubeconfig, k8s := controlPlane(t)
	ctx := context.Background()
	setup(t, k8s)

	lease := []string{"--leader-elect", "--leader-election-namespace=floodgate-system",
		"--leader-election-lease-duration=4s", "--leader-election-renew-deadline=3s", "--leader-election-retry-period=250ms",
		"--graceful-shutdown-timeout=10s"}
	first := startManager(t, kubeconfig, lease...)
	leader := waitForLeader(t, k8s, "")
	second := startManager(t, kubeconfig, lease...)

	writes := recordWrites(t, k8s)
	if err := k8s.Create(ctx, policy()); err != nil {
		t.Fatal(err)
	}
	p := waitForStatus(t, k8s, 20*time.Second, func(p *v1alpha1.TrafficPolicy) bool { return progress(p) == "Ramping 2/4" })
	stepStarted, nextStep := p.Status.Ramp.StepStartedAt.Time, p.Status.Ramp.NextStepAt.Time

	t.Log("SIGKILL the leader mid-step: its lease runs out, the other takes over")
	time.Sleep(time.Until(stepStarted.Add(2 * time.Second)))
	killed := time.Now()
	_ = first.cmd.Process.Kill()
	newLeader := waitForLeader(t, k8s, leader)
	killFailover := time.Since(killed)
	p = waitForStatus(t, k8s, 30*time.Second, func(p *v1alpha1.TrafficPolicy) bool { return progress(p) == "Ramping 3/4" })
	if got := p.Status.Ramp.StepStartedAt.Time; got.Before(nextStep) || got.After(nextStep.Add(killFailover+2*time.Second)) {
		t.Fatalf("step 3 started at %s; the hold left after the failover ended at %s", got, nextStep)
	}

	t.Log("SIGTERM the new leader: it releases its lease at once, a fresh manager takes over")
	startManager(t, kubeconfig, lease...) // the fresh candidate
	stepStarted, nextStep = p.Status.Ramp.StepStartedAt.Time, p.Status.Ramp.NextStepAt.Time
	time.Sleep(time.Until(stepStarted.Add(time.Second)))
	terminated := time.Now()
	_ = second.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-second.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the signalled leader did not exit within its graceful shutdown timeout")
	}
	exited := time.Since(terminated)
	waitForLeader(t, k8s, newLeader)
	termFailover := time.Since(terminated)
	p = waitForStatus(t, k8s, 30*time.Second, func(p *v1alpha1.TrafficPolicy) bool { return progress(p) == "Ramping 4/4" })
	if got := p.Status.Ramp.StepStartedAt.Time; got.Before(nextStep) || got.After(nextStep.Add(termFailover+2*time.Second)) {
		t.Fatalf("step 4 started at %s; the hold left after the failover ended at %s", got, nextStep)
	}
	waitForStatus(t, k8s, 60*time.Second, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseCompleted })

	report := fmt.Sprintf("failover with lease 4s, renew 3s, retry 250ms: leader SIGKILLed → the other leads after %s; leader SIGTERMed → exits in %s, the other leads after %s",
		killFailover.Round(time.Millisecond), exited.Round(time.Millisecond), termFailover.Round(time.Millisecond))
	t.Log(report)
	fmt.Println(report)
	if termFailover > 3*time.Second {
		t.Errorf("a leader stopped gracefully must release its lease at once; took %s", termFailover)
	}
	writes.check(t, k8s)
}

// controlPlane starts an embedded control plane with Floodgate's CRDs and those in crdFiles,
// stopped when the test ends, and returns it, an administrator's kubeconfig and a client.
func controlPlane(t *testing.T, crdFiles ...string) (*controlplane.ControlPlane, string, client.WithWatch) {
	t.Helper()
	cp, err := controlplane.Start(crdFiles...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	kubeconfig, err := cp.Kubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k8s, err := client.NewWithWatch(cp.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	return cp, kubeconfig, k8s
}

// overloaded serves, on loopback, the API server behind cfg as an overloaded one looks to a
// manager: discovery is answered, every other request hangs. It returns a kubeconfig for it.
func overloaded(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	target, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = transport
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		discovery := r.URL.Path == "/version" || parts[0] == "api" && len(parts) <= 2 || parts[0] == "apis" && len(parts) <= 3
		if !discovery {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { close(hang); srv.Close() })
	return kubeconfigFor(t, srv.URL)
}

// kubeconfigFor writes a kubeconfig for a plain-HTTP server (a proxy in front of the API server).
func kubeconfigFor(t *testing.T, server string) string {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "%s"}}]
users: [{name: u, user: {}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, server)), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

func progress(p *v1alpha1.TrafficPolicy) string {
	return string(p.Status.Phase) + " " + p.Status.Progress
}

func waitForStatus(t *testing.T, c client.Client, timeout time.Duration, ok func(*v1alpha1.TrafficPolicy) bool) *v1alpha1.TrafficPolicy {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p := &v1alpha1.TrafficPolicy{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "edge", Name: "api"}, p); err == nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, progress(p))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForLeader waits until the Lease is held by someone other than previous, and returns who.
func waitForLeader(t *testing.T, c client.Client, previous string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var l coordinationv1.Lease
		err := c.Get(context.Background(), client.ObjectKey{Namespace: "floodgate-system", Name: manager.LeaderElectionID}, &l)
		if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" && *l.Spec.HolderIdentity != previous {
			return *l.Spec.HolderIdentity
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader after %q within 30s", previous)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func setup(t *testing.T, c client.Client) {
	t.Helper()
	prefix := networkingv1.PathTypePrefix
	labels := map[string]string{"app": "api"}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "floodgate-system"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "edge"}},
		&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "floodgate-shed-pods", Namespace: "floodgate-system",
				Labels: map[string]string{discoveryv1.LabelServiceName: manager.DefaultShed.ServiceName}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.96.0.10"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(manager.DefaultShed.Port)}},
		},
		&networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge", Annotations: map[string]string{"nginx.ingress.kubernetes.io/limit-rps": "1000"}},
			Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: "api.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
				}}}}}},
		},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](5), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "example/api:1"}}}}},
		},
		&autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge"},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"},
				MinReplicas:    ptr.To[int32](2), MaxReplicas: 10,
				// A short window: the hold is released over at least it.
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](2)}},
			},
		},
	} {
		if err := c.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
	}
}

// policy ramps in real time: four steps of 5s, each changing the canary and limit-rps.
func policy() *v1alpha1.TrafficPolicy {
	hold := metav1.Duration{Duration: 5 * time.Second}
	return &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge"},
		Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs:     []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "api"}},
			AutoscalerRefs: []v1alpha1.AutoscalerRef{{Name: "api"}},
			Autoscaling:    v1alpha1.Autoscaling{ReleaseAfter: &metav1.Duration{Duration: time.Second}},
			RegionHeader:   "CF-IPCountry",
			Action:         v1alpha1.ActionRamp,
			Ramp: &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{
				{AllowRegions: []string{"AU"}, PerClientRequestsPerSecond: ptr.To[int32](50), Hold: hold},
				{AllowRegions: []string{"AU", "NZ"}, PerClientRequestsPerSecond: ptr.To[int32](100), Hold: hold},
				{AllowRegions: []string{"AU", "NZ", "SG"}, PerClientRequestsPerSecond: ptr.To[int32](200), Hold: hold},
				{AdmitPercent: ptr.To[int32](50), Hold: hold},
			}},
		},
	}
}

// writeLog records every write to the objects a policy changes, and every transition, in the API
// server's order (resourceVersions are etcd revisions: one order across objects).
type writeLog struct {
	events chan event
	stop   context.CancelFunc
}

type event struct {
	rv   int64
	what string // an object, or "transition" for a policy whose phase or step changed
}

func recordWrites(t *testing.T, c client.WithWatch) *writeLog {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	w := &writeLog{events: make(chan event, 10000), stop: stop}
	lists := []client.ObjectList{&networkingv1.IngressList{}, &autoscalingv2.HorizontalPodAutoscalerList{}, &v1alpha1.TrafficPolicyList{}}
	for _, list := range lists {
		wi, err := c.Watch(ctx, list, client.InNamespace("edge"))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			last := ""
			for ev := range wi.ResultChan() {
				obj, ok := ev.Object.(client.Object)
				if !ok || ev.Type == watch.Bookmark {
					continue
				}
				rv, _ := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
				what := fmt.Sprintf("%T %s", obj, obj.GetName())
				if p, isPolicy := obj.(*v1alpha1.TrafficPolicy); isPolicy {
					// A step, a phase or a stage of the autoscalers' release is a transition.
					if now := fmt.Sprintf("%s (release stage %d)", progress(p), p.Status.ReleaseStage); now != last {
						last, what = now, "transition to "+now
					} else {
						continue
					}
				}
				w.events <- event{rv: rv, what: what}
			}
		}()
		go func() { <-ctx.Done(); wi.Stop() }()
	}
	return w
}

// check fails when an object was written more than once between two transitions.
func (w *writeLog) check(t *testing.T, _ client.Client) {
	t.Helper()
	time.Sleep(500 * time.Millisecond)
	w.stop()
	var all []event
	for len(w.events) > 0 {
		all = append(all, <-w.events)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].rv < all[j].rv })
	// The objects' first events are the watches' initial lists: writes count from the policy on.
	for len(all) > 0 && !strings.HasPrefix(all[0].what, "transition") {
		all = all[1:]
	}
	counts := map[string]int{}
	for _, e := range all {
		if strings.HasPrefix(e.what, "transition") {
			counts = map[string]int{}
			continue
		}
		counts[e.what]++
		if counts[e.what] > 1 {
			var lines []string
			for _, e := range all {
				lines = append(lines, fmt.Sprintf("%d %s", e.rv, e.what))
			}
			t.Fatalf("%s written twice within one transition:\n%s", e.what, strings.Join(lines, "\n"))
		}
	}
}

// TestTheAPIServerGoneMidRampAndBack cuts the manager off from the API server for 10s in the
// middle of a 5s step (connections dropped, new ones closed at once), then lets it back: the
// manager resumes at the step it was in, starts the next one only once it can write it, and
// skips none.
func TestTheAPIServerGoneMidRampAndBack(t *testing.T) {
	cp, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	k8s, err := client.NewWithWatch(cp.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	setup(t, k8s)
	api := flaky(t, cp.Config)
	startManager(t, api.kubeconfig)
	if err := k8s.Create(context.Background(), policy()); err != nil {
		t.Fatal(err)
	}
	p := waitForStatus(t, k8s, 20*time.Second, func(p *v1alpha1.TrafficPolicy) bool { return progress(p) == "Ramping 2/4" })
	time.Sleep(time.Until(p.Status.Ramp.StepStartedAt.Add(time.Second)))

	api.down()
	time.Sleep(10 * time.Second)
	back := time.Now()
	api.up()

	p = waitForStatus(t, k8s, 30*time.Second, func(p *v1alpha1.TrafficPolicy) bool { return progress(p) == "Ramping 3/4" })
	took := time.Since(back)
	resumed := p.Status.Ramp.StepStartedAt.Time // to the second, as status keeps times
	if resumed.Before(back.Truncate(time.Second)) {
		t.Fatalf("step 3 started at %s, while the API server was gone (back at %s)", resumed, back)
	}
	p = waitForStatus(t, k8s, 30*time.Second, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseCompleted })
	var steps []string
	for _, h := range p.Status.History {
		if h.Reason == "StepAdvanced" {
			steps = append(steps, fmt.Sprint(h.Step))
		}
	}
	if strings.Join(steps, ",") != "2,3,4" {
		t.Fatalf("steps advanced: %v; none may be skipped", steps)
	}
	report := fmt.Sprintf("API server gone 10s mid-step: step 3 was in force %s after it came back", took.Round(time.Millisecond))
	t.Log(report)
	fmt.Println(report)
}

// flakyAPI is a proxy to an API server that can be cut off and restored.
type flakyAPI struct {
	srv        *httptest.Server
	gone       atomic.Bool
	kubeconfig string
}

func (f *flakyAPI) down() { f.gone.Store(true); f.srv.CloseClientConnections() }
func (f *flakyAPI) up()   { f.gone.Store(false) }

func flaky(t *testing.T, cfg *rest.Config) *flakyAPI {
	t.Helper()
	target, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = transport
	proxy.FlushInterval = -1 // watches stream
	f := &flakyAPI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.gone.Load() {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.kubeconfig = kubeconfigFor(t, f.srv.URL)
	return f
}
