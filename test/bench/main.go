// Command bench measures the controller and the shed server on an embedded control plane (real
// kube-apiserver and etcd), with the real manager and shed-server binaries, the real kubectl and
// `hey`, and appends the figures, their targets and ratios to BENCHMARKS.md (`make bench`).
//
// The manager reaches the API server through a counting proxy, so every request it makes is
// counted by verb and resource.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/apicount"
	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/test/fixtures"
	"floodgate.dev/floodgate/test/trafficenv"
)

var (
	out       = flag.String("out", "BENCHMARKS.md", "file the results are appended to")
	flips     = flag.Int("flips", 100, "(a) flips of one policy over one target")
	fleet     = flag.Int("fleet", 1000, "(b) Ingresses one policy selects")
	loopN     = flag.Int("loop", 20, "(b) kubectl processes timed for the per-object loop")
	policies  = flag.Int("policies", 100, "(c) policies")
	perPolicy = flag.Int("targets-per-policy", 10, "(c) targets of each policy")
	rest3     = flag.Duration("rest", 3*time.Minute, "(d) how long requests are counted at rest")
	unrelated = flag.Int("unrelated", 10000, "(e) unrelated Ingresses")
	hpas      = flag.Int("hpas", 1000, "(e) unrelated HPAs")
	changes   = flag.Int("changes", 20, "(f) unrelated Ingress changes")
	heyFor    = flag.Duration("hey", 10*time.Second, "(g) how long hey loads the shed server")
	apfFleet  = flag.Int("apf-fleet", 500, "(h) Ingresses of the ShedAll timed under a flood of GETs")
	apfReps   = flag.Int("apf-reps", 3, "(h) runs of each case, interleaved")
	scale     = flag.String("scale", "1000,3000,10000", "(j) Ingresses one policy selects, one fleet of each size in turn")
	only      = flag.String("only", onlyAll, "the figures to measure (f needs c: it runs in c's namespace)")
	pprofAddr = flag.String("pprof", "", "address the manager serves pprof on (go tool pprof http://ADDR/debug/pprof/profile)")
)

// onlyAll are every figure.
const onlyAll = "abcdefghij"

func main() {
	trafficenv.ServeAppIfAsked() // (i) runs this binary again as the app behind Traefik
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// b is one bench run: the control plane, the manager behind the counting proxy, the figures.
type b struct {
	ctx        context.Context
	cp         *controlplane.ControlPlane
	c          client.Client
	cs         *kubernetes.Clientset
	kubeconfig string // direct, for kubectl and the shed server
	proxied    string // through the counting proxy, for the manager
	counts     *apicount.Counter
	bin        string
	mgr        *process
	figures    []figure
	notes      []string
}

type figure struct {
	id, what, value, target, verdict string
}

func (x *b) add(id, what, value, target string, ok bool) {
	v := "met"
	if !ok {
		v = "MISSED"
	}
	if target == "" {
		v = ""
	}
	x.figures = append(x.figures, figure{id, what, value, target, v})
	fmt.Printf("%-4s %-70s %-40s %s %s\n", id, what, value, target, v)
}

func run() error {
	ctx := context.Background()
	started := time.Now()
	load := loadavg()
	dir, err := os.MkdirTemp("", "floodgate-bench")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	cp, err := controlplane.Start()
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	x := &b{ctx: ctx, cp: cp, bin: dir}
	if x.c, err = client.New(cp.Config, client.Options{Scheme: scheme.New()}); err != nil {
		return err
	}
	if x.cs, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return err
	}
	if x.kubeconfig, err = cp.Kubeconfig(dir); err != nil {
		return err
	}
	for _, cmd := range []string{"cmd/manager", "cmd/shed-server", "test/bench/floor"} {
		if _, err := fixtures.Build(dir, cmd); err != nil {
			return err
		}
	}
	if x.counts, x.proxied, err = apicount.Proxy(cp.Config, dir); err != nil {
		return err
	}
	if err := x.shedBackend(); err != nil {
		return err
	}
	if x.mgr, err = x.startManager(); err != nil {
		return err
	}
	emptyRSS, emptyHeap := x.mgr.memory()

	steps := []struct {
		ids string
		run func() error
	}{{"a", x.flipOne}, {"d", x.atRest}, {"b", x.fleetBySelector}, {"c", x.manyPolicies}, {"f", x.unrelatedChange},
		// j after f: the teardown of its 10,000-target fleet would be in f's CPU figure.
		{"j", x.fleetsAtScale}, {"e", x.memoryBesideUnrelated}, {"g", x.shedServer}, {"h", x.apfFlood}, {"i", x.leverLatency}}
	for _, step := range steps {
		if !strings.Contains(*only, step.ids) {
			continue
		}
		if err := step.run(); err != nil {
			x.mgr.stop()
			return err
		}
	}
	x.mgr.stop()
	x.notes = append(x.notes, fmt.Sprintf("Manager memory with nothing to watch, for scale: RSS %s, heap in use %s.", mib(emptyRSS), mib(emptyHeap)))
	return x.write(started, load)
}

// --- (a) and (d) ---------------------------------------------------------------------------

func (x *b) flipOne() error {
	ns, err := x.namespace("bench-a")
	if err != nil {
		return err
	}
	if err := x.create(ingress(ns, "api", nil)); err != nil {
		return err
	}
	p := policy(ns, "api")
	p.Spec.TargetRefs = []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "api"}}
	if err := x.create(p); err != nil {
		return err
	}
	if err := x.settled(ns, "api", v1alpha1.PhaseNormal); err != nil {
		return err
	}
	// The floor: one merge patch's round trip, in the same run.
	var rtts []time.Duration
	for i := range *flips {
		start := time.Now()
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"bench":"%d"}}}`, i)
		if _, err := x.cs.NetworkingV1().Ingresses(ns).Patch(x.ctx, "api", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return err
		}
		rtts = append(rtts, time.Since(start))
	}
	rtt := percentile(rtts, 50)
	// What a flip itself costs the API server: a merge patch of the policy (a CRD whose schema
	// and CEL rules are checked on every write), here of a label, which wakes no pass.
	var policyRTTs []time.Duration
	for i := range *flips {
		start := time.Now()
		patch := fmt.Sprintf(`{"metadata":{"labels":{"bench":"%d"}}}`, i)
		if err := x.c.Patch(x.ctx, &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}}, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			return err
		}
		policyRTTs = append(policyRTTs, time.Since(start))
	}
	policyRTT := percentile(policyRTTs, 50)

	events, stop, err := x.watchIngresses(ns)
	if err != nil {
		return err
	}
	defer stop()
	var lat, controllerShare, flipRTTs []time.Duration
	var perTransition []map[string]int
	reconcileSum, reconcileCount := x.mgr.metric("controller_runtime_reconcile_time_seconds_sum", ""), x.mgr.metric("controller_runtime_reconcile_time_seconds_count", "")
	for i := range *flips {
		action, phase := v1alpha1.ActionShedAll, v1alpha1.PhaseShedding
		if i%2 == 1 {
			action, phase = v1alpha1.ActionNormal, v1alpha1.PhaseNormal
		}
		before := x.counts.Snapshot()
		start := time.Now()
		if err := x.setAction(ns, "api", action); err != nil {
			return err
		}
		flipRTT := time.Since(start)
		if err := awaitCanaries(events, 1, action == v1alpha1.ActionShedAll, 30*time.Second); err != nil {
			return fmt.Errorf("flip %d: %w", i, err)
		}
		lat = append(lat, time.Since(start))
		controllerShare = append(controllerShare, time.Since(start)-flipRTT)
		flipRTTs = append(flipRTTs, flipRTT)
		if err := x.settled(ns, "api", phase); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond) // the pass's own notices land
		perTransition = append(perTransition, x.counts.Since(before))
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	meanPass := time.Duration((x.mgr.metric("controller_runtime_reconcile_time_seconds_sum", "") - reconcileSum) /
		(x.mgr.metric("controller_runtime_reconcile_time_seconds_count", "") - reconcileCount) * float64(time.Second))
	x.add("a", fmt.Sprintf("flip → applied, 1 target, %d flips: p50", *flips), ms(p50), fmt.Sprintf("≤ 3× merge patch RTT %s = %s", ms(rtt), ms(3*rtt)), p50 <= 3*rtt)
	x.add("a", "flip → applied: p99", ms(p99), "≤ 50 ms", p99 <= 50*time.Millisecond)
	x.add("a", "ratio p50 / merge patch RTT", fmt.Sprintf("%.2f×", float64(p50)/float64(rtt)), "≤ 3×", p50 <= 3*rtt)
	x.add("a", "… a merge patch of the policy itself (the flip's own write, CRD schema and CEL checked): p50", ms(policyRTT), "", true)
	share := percentile(controllerShare, 50)
	x.add("a", "… Floodgate's share, after the flip's patch returned (watch → pass → canary write → watch): p50", ms(share),
		fmt.Sprintf("≤ 3× merge patch RTT = %s", ms(3*rtt)), share <= 3*rtt)
	x.add("a", "… a reconcile pass (mean, controller_runtime_reconcile_time_seconds, every pass of the flips)", ms(meanPass), "", true)
	// Where the tail goes: each part's own p99, over the same flips.
	x.add("a", "… p99 of each part: the flip's own patch / Floodgate's share / an Ingress merge patch (the floor's runs)",
		fmt.Sprintf("%s / %s / %s", ms(percentile(flipRTTs, 99)), ms(percentile(controllerShare, 99)), ms(percentile(rtts, 99))), "", true)

	shedAll, normal := averageCounts(perTransition, 0), averageCounts(perTransition, 1)
	writesShed, writesNormal := writes(shedAll), writes(normal)
	// The shed Service and its EndpointSlice stand ready while the policy exists: a lever changes
	// the canary and the policy's status, 2 objects.
	const changed = 2
	x.add("d", "API requests per transition Normal → ShedAll (1 target)", formatCounts(shedAll), "", true)
	x.add("d", "API requests per transition ShedAll → Normal (1 target)", formatCounts(normal), "", true)
	// Events are not objects the lever changes; they are counted above.
	x.add("d", "writes per changed object, → ShedAll (2 objects: canary created, policy status)", fmt.Sprintf("%.2f", writesShed/changed), "1 write per changed object", writesShed <= changed+0.0001)
	x.add("d", "writes per changed object, → Normal (2 objects: canary deleted, policy status)", fmt.Sprintf("%.2f", writesNormal/changed), "1 write per changed object", writesNormal <= changed+0.0001)
	return nil
}

func (x *b) atRest() error {
	before := x.counts.Snapshot()
	time.Sleep(*rest3)
	at := x.counts.Since(before)
	n := 0
	for k, v := range at {
		if !strings.HasPrefix(k, "watch ") {
			n += v
		}
	}
	x.add("d", fmt.Sprintf("API requests over %s at rest (watches kept open not counted)", *rest3), fmt.Sprintf("%d %s", n, formatCounts(toFloat(at))), "0", n == 0)
	return nil
}

// --- (b) -----------------------------------------------------------------------------------

// selectorFleet creates, in namespace ns, n Ingresses labelled fleet=name and the policy "fleet"
// (not yet created) that selects them.
func (x *b) selectorFleet(ns, name string, n int) (*v1alpha1.TrafficPolicy, error) {
	if _, err := x.namespace(ns); err != nil {
		return nil, err
	}
	labels := map[string]string{"fleet": name}
	if err := x.createMany(n, func(i int) client.Object { return ingress(ns, fmt.Sprintf("%s-%04d", name, i), labels) }); err != nil {
		return nil, err
	}
	p := policy(ns, "fleet")
	p.Spec.TargetSelector = &v1alpha1.TargetSelector{MatchLabels: labels}
	return p, nil
}

func (x *b) fleetBySelector() error {
	ns := "bench-b"
	p, err := x.selectorFleet(ns, "edge", *fleet)
	if err != nil {
		return err
	}
	armStart, beforeArm := time.Now(), x.counts.Snapshot()
	if err := x.create(p); err != nil {
		return err
	}
	if err := x.settled(ns, "fleet", v1alpha1.PhaseNormal); err != nil {
		return err
	}
	// Armed: the API server judged every lever (ShedAll, Normal) for every selected Ingress.
	if err := x.armed(ns, "fleet", *fleet, 10*time.Minute); err != nil {
		return fmt.Errorf("arming the fleet: %w", err)
	}
	armed, dryRuns := time.Since(armStart), 0
	for k, v := range x.counts.Since(beforeArm) {
		if strings.HasPrefix(k, "dry-run ") {
			dryRuns += v
		}
	}
	x.add("b", fmt.Sprintf("arming that policy (ShedAll and Normal judged for %d Ingresses): dry-run requests, time from create to Armed", *fleet),
		fmt.Sprintf("%d requests, %s", dryRuns, secs(armed)), "within the armer's budget (--arm-qps 50)", true)
	events, stop, err := x.watchIngresses(ns)
	if err != nil {
		return err
	}
	defer stop()
	cpuBefore := x.mgr.cpu()
	start := time.Now()
	if err := x.setAction(ns, "fleet", v1alpha1.ActionShedAll); err != nil {
		return err
	}
	if err := awaitCanaries(events, *fleet, true, 5*time.Minute); err != nil {
		return err
	}
	shed := time.Since(start)
	if err := x.settled(ns, "fleet", v1alpha1.PhaseShedding); err != nil {
		return err
	}
	start = time.Now()
	if err := x.setAction(ns, "fleet", v1alpha1.ActionNormal); err != nil {
		return err
	}
	if err := awaitCanaries(events, *fleet, false, 5*time.Minute); err != nil {
		return err
	}
	back := time.Since(start)
	if err := x.settled(ns, "fleet", v1alpha1.PhaseNormal); err != nil {
		return err
	}
	cpu := x.mgr.cpu() - cpuBefore

	start = time.Now()
	if out, err := x.kubectl("annotate", "ingress", "-n", ns, "-l", "fleet=edge", "bench=bulk", "--overwrite"); err != nil {
		return fmt.Errorf("kubectl annotate -l: %v\n%s", err, out)
	}
	bulk := time.Since(start)
	start = time.Now()
	for i := range *loopN {
		if out, err := x.kubectl("annotate", "ingress", "-n", ns, fmt.Sprintf("edge-%04d", i), "bench=loop", "--overwrite"); err != nil {
			return fmt.Errorf("kubectl annotate: %v\n%s", err, out)
		}
	}
	loop := time.Since(start) * time.Duration(*fleet) / time.Duration(*loopN)

	x.add("b", fmt.Sprintf("1 policy selecting %d Ingresses → ShedAll: every canary applied", *fleet), secs(shed), "≥ 2× faster than bulk kubectl annotate -l", 2*shed <= bulk)
	x.add("b", "→ Normal: every canary removed", secs(back), "faster than bulk kubectl annotate -l", back < bulk)
	x.add("b", fmt.Sprintf("bulk `kubectl annotate -l` over the same %d Ingresses", *fleet), secs(bulk), "", true)
	x.add("b", fmt.Sprintf("per-object kubectl loop (%d timed, extrapolated to %d)", *loopN, *fleet), secs(loop), "", true)
	x.add("b", "ratio bulk kubectl / Floodgate ShedAll", fmt.Sprintf("%.2f×", float64(bulk)/float64(shed)), "≥ 2×", 2*shed <= bulk)
	x.add("b", "ratio kubectl loop / Floodgate ShedAll", fmt.Sprintf("%.1f×", float64(loop)/float64(shed)), "≥ 40×", loop >= 40*shed)
	x.add("b", "manager CPU for the ShedAll and Normal of the fleet", secs(cpu), "", true)
	return nil
}

// --- (j) ---------------------------------------------------------------------------------------

// fleetsAtScale flips one policy over fleets of growing size, each armed first (as a policy is
// before an incident), and times the ShedAll, the Normal, and a bulk `kubectl annotate -l` over
// the same Ingresses in the same run. Each fleet is deleted before the next.
func (x *b) fleetsAtScale() error {
	var perThousand []string
	for _, field := range strings.Split(*scale, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n <= 0 {
			return fmt.Errorf("-scale: %q is not a fleet size", field)
		}
		shed, err := x.fleetAtScale(n)
		if err != nil {
			return err
		}
		perThousand = append(perThousand, secs(shed*1000/time.Duration(n)))
	}
	x.add("j", "ShedAll time per 1,000 Ingresses, at each size", strings.Join(perThousand, " / "), "linear (the burst makes the smallest cheapest)", true)
	return nil
}

// fleetAtScale is (j) for one fleet of n Ingresses: it returns the ShedAll's time, and deletes the
// fleet when done.
func (x *b) fleetAtScale(n int) (time.Duration, error) {
	ns := fmt.Sprintf("bench-j-%d", n)
	p, err := x.selectorFleet(ns, "edge", n)
	if err != nil {
		return 0, err
	}
	armStart := time.Now()
	if err := x.create(p); err != nil {
		return 0, err
	}
	if err := x.armed(ns, "fleet", n, 30*time.Minute); err != nil {
		return 0, fmt.Errorf("arming the fleet of %d: %w", n, err)
	}
	armed := time.Since(armStart)
	events, stop, err := x.watchIngresses(ns)
	if err != nil {
		return 0, err
	}
	defer stop()
	before := x.counts.Snapshot()
	start := time.Now()
	if err := x.setAction(ns, "fleet", v1alpha1.ActionShedAll); err != nil {
		return 0, err
	}
	if err := awaitCanaries(events, n, true, 30*time.Minute); err != nil {
		return 0, err
	}
	shed := time.Since(start)
	writes := 0
	for k, v := range x.counts.Since(before) {
		if strings.HasPrefix(k, "create ") || strings.HasPrefix(k, "patch ") || strings.HasPrefix(k, "update ") || strings.HasPrefix(k, "delete ") {
			writes += v
		}
	}
	if err := x.settled(ns, "fleet", v1alpha1.PhaseShedding); err != nil {
		return 0, err
	}
	size, err := x.policySize(ns, "fleet")
	if err != nil {
		return 0, err
	}
	rss, _ := x.mgr.memory()
	start = time.Now()
	if err := x.setAction(ns, "fleet", v1alpha1.ActionNormal); err != nil {
		return 0, err
	}
	if err := awaitCanaries(events, n, false, 30*time.Minute); err != nil {
		return 0, err
	}
	back := time.Since(start)
	if err := x.settled(ns, "fleet", v1alpha1.PhaseNormal); err != nil {
		return 0, err
	}
	start = time.Now()
	if out, err := x.kubectl("annotate", "ingress", "-n", ns, "-l", "fleet=edge", "bench=bulk", "--overwrite"); err != nil {
		return 0, fmt.Errorf("kubectl annotate -l: %v\n%s", err, out)
	}
	bulk := time.Since(start)
	// The budget: the manager's client-side limit, its burst spent first.
	floor := time.Duration(max(0, float64(writes-manager.DefaultAPIBurst)) / manager.DefaultAPIQPS * float64(time.Second))
	x.add("j", fmt.Sprintf("%d Ingresses → ShedAll: every canary applied (armed first, in %s)", n, secs(armed)), secs(shed),
		fmt.Sprintf("within the write budget: %d writes at %d/s after a burst of %d ≥ %s", writes, manager.DefaultAPIQPS, manager.DefaultAPIBurst, secs(floor)), true)
	x.add("j", fmt.Sprintf("… %d: → Normal, every canary removed", n), secs(back), "", true)
	x.add("j", fmt.Sprintf("… %d: bulk `kubectl annotate -l` over the same Ingresses; ratio to the ShedAll", n),
		fmt.Sprintf("%s; %.2f×", secs(bulk), float64(bulk)/float64(shed)), "", true)
	x.add("j", fmt.Sprintf("… %d: the policy object while shedding (JSON); manager RSS", n), fmt.Sprintf("%.1f KiB; %s", float64(size)/1024, mib(rss)),
		"≤ 64 KiB, whatever the fleet", size <= 64<<10)
	if err := x.c.Delete(x.ctx, p); err != nil {
		return 0, err
	}
	if err := poll(10*time.Minute, func() (bool, error) {
		err := x.c.Get(x.ctx, client.ObjectKeyFromObject(p), &v1alpha1.TrafficPolicy{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}); err != nil {
		return 0, fmt.Errorf("the policy of %d not gone: %w", n, err)
	}
	return shed, x.c.DeleteAllOf(x.ctx, &networkingv1.Ingress{}, client.InNamespace(ns))
}

// armed waits until the API server has judged every lever of the policy for its n targets.
func (x *b) armed(ns, name string, n int, timeout time.Duration) error {
	return poll(timeout, func() (bool, error) {
		var cur v1alpha1.TrafficPolicy
		if err := x.c.Get(x.ctx, client.ObjectKey{Namespace: ns, Name: name}, &cur); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionArmed)
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == cur.Generation &&
			strings.Contains(c.Message, fmt.Sprintf("for %d targets", n)), nil
	})
}

// policySize is the size of the policy as the API server serves it.
func (x *b) policySize(ns, name string) (int, error) {
	raw, err := x.cs.RESTClient().Get().AbsPath("/apis", v1alpha1.GroupVersion.Group, v1alpha1.GroupVersion.Version,
		"namespaces", ns, "trafficpolicies", name).DoRaw(x.ctx)
	return len(raw), err
}

// --- (c) and (f) ---------------------------------------------------------------------------

func (x *b) manyPolicies() error {
	ns, err := x.namespace("bench-c")
	if err != nil {
		return err
	}
	total := *policies * *perPolicy
	if err := x.createMany(total, func(i int) client.Object { return ingress(ns, fmt.Sprintf("t-%04d", i), nil) }); err != nil {
		return err
	}
	if err := x.createMany(*policies, func(i int) client.Object {
		p := policy(ns, fmt.Sprintf("p-%03d", i))
		for j := range *perPolicy {
			p.Spec.TargetRefs = append(p.Spec.TargetRefs, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: fmt.Sprintf("t-%04d", i**perPolicy+j)})
		}
		return p
	}); err != nil {
		return err
	}
	for i := range *policies {
		if err := x.settled(ns, fmt.Sprintf("p-%03d", i), v1alpha1.PhaseNormal); err != nil {
			return err
		}
	}
	events, stop, err := x.watchIngresses(ns)
	if err != nil {
		return err
	}
	defer stop()
	flipAll := func(action v1alpha1.Action) error {
		return parallel(*policies, 16, func(i int) error { return x.setAction(ns, fmt.Sprintf("p-%03d", i), action) })
	}
	start := time.Now()
	if err := flipAll(v1alpha1.ActionShedAll); err != nil {
		return err
	}
	if err := awaitCanaries(events, total, true, 5*time.Minute); err != nil {
		return err
	}
	shed := time.Since(start)
	for i := range *policies {
		if err := x.settled(ns, fmt.Sprintf("p-%03d", i), v1alpha1.PhaseShedding); err != nil {
			return err
		}
	}
	start = time.Now()
	if err := flipAll(v1alpha1.ActionNormal); err != nil {
		return err
	}
	if err := awaitCanaries(events, total, false, 5*time.Minute); err != nil {
		return err
	}
	back := time.Since(start)
	for i := range *policies {
		if err := x.settled(ns, fmt.Sprintf("p-%03d", i), v1alpha1.PhaseNormal); err != nil {
			return err
		}
	}
	x.add("c", fmt.Sprintf("%d policies × %d targets flipped to ShedAll (one patch each, 16 at once): every canary applied", *policies, *perPolicy), secs(shed), "", true)
	x.add("c", "… flipped back to Normal: every canary removed", secs(back), "", true)
	return nil
}

func (x *b) unrelatedChange() error {
	ns := "bench-c" // the namespace of the 100 policies
	if err := x.create(ingress(ns, "unrelated", nil)); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	passesBefore, cpuBefore := x.mgr.passes(), x.mgr.cpu()
	for i := range *changes {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"touched":"%d"}}}`, i)
		if _, err := x.cs.NetworkingV1().Ingresses(ns).Patch(x.ctx, "unrelated", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	passes := (x.mgr.passes() - passesBefore) / float64(*changes)
	cpu := (x.mgr.cpu() - cpuBefore) / time.Duration(*changes)
	x.add("f", fmt.Sprintf("one unrelated Ingress change in a namespace of %d policies: reconciles", *policies), fmt.Sprintf("%.2f", passes), "≤ 1 per affected policy (0 affected)", passes == 0)
	x.add("f", fmt.Sprintf("… manager CPU per change (mean of %d, /proc at 10 ms resolution, idle included)", *changes), ms(cpu), "≤ 50 ms", cpu <= 50*time.Millisecond)
	return nil
}

// --- (e) -----------------------------------------------------------------------------------

func (x *b) memoryBesideUnrelated() error {
	// The fleets above are let go: the figure is the manager beside what it does not act on.
	for _, ns := range []string{"bench-b", "bench-c"} {
		if err := x.c.DeleteAllOf(x.ctx, &v1alpha1.TrafficPolicy{}, client.InNamespace(ns)); err != nil {
			return err
		}
		if err := poll(2*time.Minute, func() (bool, error) {
			var list v1alpha1.TrafficPolicyList
			err := x.c.List(x.ctx, &list, client.InNamespace(ns))
			return err == nil && len(list.Items) == 0, err
		}); err != nil {
			return fmt.Errorf("policies of %s not gone: %w", ns, err)
		}
		if err := x.c.DeleteAllOf(x.ctx, &networkingv1.Ingress{}, client.InNamespace(ns)); err != nil {
			return err
		}
	}
	const namespaces = 10
	for i := range namespaces {
		if _, err := x.namespace(fmt.Sprintf("unrelated-%d", i)); err != nil {
			return err
		}
	}
	labels := map[string]string{"app": "unrelated", "app.kubernetes.io/managed-by": "Helm", "team": "storefront"}
	if err := x.createMany(*unrelated, func(i int) client.Object {
		ing := ingress(fmt.Sprintf("unrelated-%d", i%namespaces), fmt.Sprintf("web-%05d", i), labels)
		ing.Annotations = map[string]string{"nginx.ingress.kubernetes.io/proxy-body-size": "8m",
			corev1.LastAppliedConfigAnnotation: strings.Repeat("x", 600)}
		return ing
	}); err != nil {
		return err
	}
	if err := x.createMany(*hpas, func(i int) client.Object {
		return &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%05d", i), Namespace: fmt.Sprintf("unrelated-%d", i%namespaces), Labels: labels},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: fmt.Sprintf("web-%05d", i)},
				MinReplicas:    ptr.To[int32](2), MaxReplicas: 10,
			},
		}
	}); err != nil {
		return err
	}
	x.mgr.stop()
	var err error
	if x.mgr, err = x.startManager(); err != nil {
		return err
	}
	time.Sleep(10 * time.Second)
	rss, heap := x.mgr.memory()
	x.add("e", fmt.Sprintf("manager RSS after a restart beside %d unrelated Ingresses + %d HPAs", *unrelated, *hpas), mib(rss), "≤ 64 MiB", rss <= 64<<20)
	x.add("e", "… Go heap in use (go_memstats_heap_inuse_bytes)", mib(heap), "", true)
	x.add("e", "… Go heap obtained from the OS / idle / released to it",
		fmt.Sprintf("%s / %s / %s", mib(int64(x.mgr.metric("go_memstats_heap_sys_bytes", ""))), mib(int64(x.mgr.metric("go_memstats_heap_idle_bytes", ""))),
			mib(int64(x.mgr.metric("go_memstats_heap_released_bytes", "")))), "", true)
	x.add("e", "… Go runtime total from the OS (go_memstats_sys_bytes)", mib(int64(x.mgr.metric("go_memstats_sys_bytes", ""))), "", true)

	// The same, installed namespaced (--watch-namespaces): the unrelated namespaces are not cached.
	x.mgr.stop()
	if x.mgr, err = x.startManager("--watch-namespaces", "bench-a"); err != nil {
		return err
	}
	time.Sleep(10 * time.Second)
	rss, heap = x.mgr.memory()
	x.add("e", "… the same beside them, installed namespaced (--watch-namespaces=bench-a): RSS", mib(rss), "≤ 64 MiB", rss <= 64<<20)
	x.add("e", "… namespaced: Go heap in use", mib(heap), "", true)
	return nil
}

// --- (g) -----------------------------------------------------------------------------------

func (x *b) shedServer() error {
	if _, err := exec.LookPath("hey"); err != nil {
		return fmt.Errorf("hey is needed (Debian package hey; make bench installs it): %w", err)
	}
	shedAddr, health := freeAddr(), freeAddr()
	shedPerCore, shedRPS, shedCPU, shedN, err := x.loadOnOneCore(shedAddr, "http://"+health+"/healthz", filepath.Join(x.bin, "shed-server"), "--listen", shedAddr, "--health-listen", health)
	if err != nil {
		return err
	}
	floorAddr := freeAddr()
	floorPerCore, _, _, _, err := x.loadOnOneCore(floorAddr, "http://"+floorAddr+"/", filepath.Join(x.bin, "floor"), "--listen", floorAddr)
	if err != nil {
		return err
	}
	x.add("g", "shed server responses per CPU-second it used (GOMAXPROCS=1, pinned to core 0)", fmt.Sprintf("%.0f", shedPerCore), "≥ 50,000 per core", shedPerCore >= 50000)
	x.add("g", fmt.Sprintf("… throughput seen by hey -c 64 (pinned to core 1) over %s", *heyFor), fmt.Sprintf("%.0f/s (%d responses, server CPU %s)", shedRPS, shedN, secs(shedCPU)), "", true)
	x.add("g", "… net/http's floor, measured the same way (a bare 503 handler, test/bench/floor)", fmt.Sprintf("%.0f", floorPerCore), "", true)
	x.add("g", "… ratio shed server / floor", fmt.Sprintf("%.2f×", shedPerCore/floorPerCore), "", true)
	return nil
}

// loadOnOneCore runs a server pinned to core 0 with GOMAXPROCS=1, loads it with hey pinned to
// core 1, and returns its responses per CPU-second, hey's throughput, the server's CPU time and
// the responses counted.
func (x *b) loadOnOneCore(addr, ready string, argv ...string) (perCore, rps float64, cpu time.Duration, responses int, err error) {
	cmd := exec.Command("taskset", append([]string{"-c", "0"}, argv...)...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "KUBECONFIG="+x.kubeconfig)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := poll(30*time.Second, func() (bool, error) {
		resp, err := http.Get(ready)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err == nil, nil
	}); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("%s not up: %w\n%s", argv[0], err, log.String())
	}
	server := &process{cmd: cmd}
	cpuBefore := server.cpu()
	outb, err := exec.Command("taskset", "-c", "1", "hey", "-z", heyFor.String(), "-c", "64", "http://"+addr+"/").CombinedOutput()
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("hey: %v\n%s", err, outb)
	}
	cpu = server.cpu() - cpuBefore
	m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(outb)
	if m == nil {
		return 0, 0, 0, 0, fmt.Errorf("hey printed no Requests/sec:\n%s", outb)
	}
	rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, r := range regexp.MustCompile(`\[(\d+)\]\s+(\d+) responses`).FindAllSubmatch(outb, -1) {
		n, _ := strconv.Atoi(string(r[2]))
		responses += n
	}
	return float64(responses) / cpu.Seconds(), rps, cpu, responses, nil
}

// --- the manager process -------------------------------------------------------------------

type process struct {
	cmd     *exec.Cmd
	metrics string
	log     *strings.Builder
	done    chan struct{}
}

func (x *b) startManager(extra ...string) (*process, error) {
	return x.startManagerWith(x.proxied, extra...)
}

// startManagerWith starts the manager binary reaching the API server with kubeconfig.
func (x *b) startManagerWith(kubeconfig string, extra ...string) (*process, error) {
	metrics, health := freeAddr(), freeAddr()
	args := []string{"--kubeconfig", kubeconfig, "--metrics-bind-address", metrics, "--health-probe-bind-address", health,
		"--shed-namespace", manager.DefaultShed.Namespace}
	args = append(args, extra...)
	if *pprofAddr != "" {
		args = append(args, "--pprof-bind-address", *pprofAddr)
	}
	cmd := exec.Command(filepath.Join(x.bin, "manager"), args...)
	log := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, metrics: metrics, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	if err := poll(2*time.Minute, func() (bool, error) {
		resp, err := http.Get("http://" + health + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200, nil
	}); err != nil {
		p.stop()
		return nil, fmt.Errorf("manager not ready: %w\n%s", err, log.String())
	}
	return p, nil
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cpu is the process's user+system CPU time so far, from /proc (10 ms ticks).
func (p *process) cpu() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data)[strings.LastIndex(string(data), ")")+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// memory is the process's resident set and Go heap in use.
func (p *process) memory() (rss, heap int64) {
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	heap = int64(p.metric("go_memstats_heap_inuse_bytes", ""))
	return rss, heap
}

// passes is floodgate_policy_passes_total summed over every policy.
func (p *process) passes() float64 { return p.metric("floodgate_policy_passes_total", "") }

func (p *process) metric(name, _ string) float64 {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0
	}
	family, ok := families[strings.TrimSuffix(strings.TrimSuffix(name, "_sum"), "_count")]
	if !ok {
		return 0
	}
	sum := 0.0
	for _, m := range family.GetMetric() {
		switch {
		case strings.HasSuffix(name, "_sum") && m.GetHistogram() != nil:
			sum += m.GetHistogram().GetSampleSum()
		case strings.HasSuffix(name, "_count") && m.GetHistogram() != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

// --- helpers -------------------------------------------------------------------------------

func (x *b) shedBackend() error {
	if _, err := x.namespace(manager.DefaultShed.Namespace); err != nil {
		return err
	}
	return x.create(&discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "floodgate-shed-pods", Namespace: manager.DefaultShed.Namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: manager.DefaultShed.ServiceName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
	})
}

func (x *b) namespace(name string) (string, error) {
	return name, client.IgnoreAlreadyExists(x.c.Create(x.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
}

func (x *b) create(obj client.Object) error { return x.c.Create(x.ctx, obj) }

func (x *b) createMany(n int, make func(int) client.Object) error {
	return parallel(n, 32, func(i int) error { return x.c.Create(x.ctx, make(i)) })
}

func (x *b) setAction(ns, name string, action v1alpha1.Action) error {
	patch := fmt.Sprintf(`{"spec":{"action":%q}}`, action)
	return x.c.Patch(x.ctx, &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, client.RawPatch(types.MergePatchType, []byte(patch)))
}

// settled waits until the controller has observed the policy's generation and reached phase.
func (x *b) settled(ns, name string, phase v1alpha1.Phase) error {
	return poll(5*time.Minute, func() (bool, error) {
		var p v1alpha1.TrafficPolicy
		if err := x.c.Get(x.ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return false, err
		}
		return p.Status.ObservedGeneration == p.Generation && p.Status.Phase == phase, nil
	})
}

func (x *b) kubectl(args ...string) (string, error) {
	cmd := exec.Command(x.cp.Kubectl(), append([]string{"--kubeconfig", x.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// watchIngresses streams the namespace's Ingress events from now on.
func (x *b) watchIngresses(ns string) (<-chan watch.Event, func(), error) {
	list, err := x.cs.NetworkingV1().Ingresses(ns).List(x.ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return nil, nil, err
	}
	w, err := x.cs.NetworkingV1().Ingresses(ns).Watch(x.ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		return nil, nil, err
	}
	return w.ResultChan(), w.Stop, nil
}

// awaitCanaries reads events until n canaries are applied at weight 100 (applied) or n are
// removed (!applied).
func awaitCanaries(events <-chan watch.Event, n int, applied bool, timeout time.Duration) error {
	seen := map[string]bool{}
	deadline := time.After(timeout)
	for len(seen) < n {
		select {
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("the watch ended after %d of %d canaries", len(seen), n)
			}
			ing, ok := ev.Object.(*networkingv1.Ingress)
			if !ok || !strings.Contains(ing.Name, "-floodgate-") {
				continue
			}
			switch {
			case applied && ev.Type != watch.Deleted && ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"] == "100":
				seen[ing.Name] = true
			case !applied && ev.Type == watch.Deleted:
				seen[ing.Name] = true
			}
		case <-deadline:
			return fmt.Errorf("%d of %d canaries after %s", len(seen), n, timeout)
		}
	}
	return nil
}

func ingress(ns, name string, labels map[string]string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: name + "." + ns + ".example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
				{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}}},
			}}}}}},
	}
}

func policy(ns, name string) *v1alpha1.TrafficPolicy {
	return &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.TrafficPolicySpec{
			RegionHeader: "CF-IPCountry",
			Action:       v1alpha1.ActionNormal,
			Shed:         v1alpha1.ShedResponse{StatusCode: ptr.To[int32](503), RetryAfterSeconds: ptr.To[int32](120)},
		},
	}
}

// parallel runs f(0..n-1), width at once, and returns the first error.
func parallel(n, width int, f func(int) error) error {
	var g errgroup.Group
	g.SetLimit(width)
	for i := range n {
		g.Go(func() error { return f(i) })
	}
	return g.Wait()
}

// poll waits until cond holds, checking every 10 ms; an error from cond is retried, and the
// last one is reported if time runs out.
func poll(timeout time.Duration, cond func() (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		last = err
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("not after %s (last error: %v): %w", timeout, last, err)
	}
	return nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

func ms(d time.Duration) string   { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
func mib(n int64) string          { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

// --- the counting proxy --------------------------------------------------------------------

func averageCounts(all []map[string]int, parity int) map[string]float64 {
	out := map[string]float64{}
	n := 0
	for i, m := range all {
		if i%2 != parity {
			continue
		}
		n++
		for k, v := range m {
			out[k] += float64(v)
		}
	}
	for k := range out {
		out[k] /= float64(max(n, 1))
	}
	return out
}

func toFloat(m map[string]int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = float64(v)
	}
	return out
}

// writes counts the writes to objects the lever changes (not Events, not leases).
func writes(m map[string]float64) float64 {
	n := 0.0
	for k, v := range m {
		verb, resource, _ := strings.Cut(k, " ")
		if (verb == "create" || verb == "update" || verb == "patch" || verb == "delete") && resource != "events" && !strings.HasPrefix(resource, "leases") {
			n += v
		}
	}
	return n
}

func formatCounts(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.4g", k, m[k]))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// --- BENCHMARKS.md -------------------------------------------------------------------------

func (x *b) write(started time.Time, load string) error {
	var s strings.Builder
	title := "`make bench`"
	if *only != onlyAll {
		title = fmt.Sprintf("`make bench BENCH_FLAGS=-only=%s`: figures %s only", *only, *only)
	}
	fmt.Fprintf(&s, "\n## %s — %s\n\n", started.UTC().Format("2006-01-02 15:04 UTC"), title)
	fmt.Fprintf(&s, "Machine: %s, %d cores, %s; load average at start %s; %s; kube-apiserver %s (envtest); took %s.\n\n",
		cpuModel(), runtime.NumCPU(), memTotal(), load, runtime.Version(), controlplane.K8sVersion, time.Since(started).Round(time.Second))
	s.WriteString("| | figure | measured | target | |\n|---|---|---|---|---|\n")
	for _, f := range x.figures {
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s |\n", f.id, f.what, strings.ReplaceAll(f.value, "|", "/"), f.target, f.verdict)
	}
	for _, n := range x.notes {
		fmt.Fprintf(&s, "\n%s\n", n)
	}
	fmt.Print(s.String())
	f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	_, err = f.WriteString(s.String())
	return err
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	return "?"
}
