package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"floodgate.dev/floodgate/api/v1alpha1"
)

var (
	policyAction = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "floodgate_policy_action",
		Help: "1 for the action each TrafficPolicy is in (label action), 0 for the others.",
	}, []string{"namespace", "policy", "action"})
	policyPhase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "floodgate_policy_phase",
		Help: "1 for the phase each TrafficPolicy is in (label phase), 0 for the others.",
	}, []string{"namespace", "policy", "phase"})
	rampStep = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "floodgate_ramp_step",
		Help: "The ramp step in force (1-based; 0 when not ramping).",
	}, []string{"namespace", "policy"})
	gateVerdictGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "floodgate_gate_verdict",
		Help: "The last verdict of each gate: 1 Pass, 0 Fail, -1 Unknown.",
	}, []string{"namespace", "policy", "gate"})
	leverFlips = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "floodgate_lever_flips_total",
		Help: "Changes of a TrafficPolicy's action, by the action flipped to.",
	}, []string{"namespace", "policy", "action"})
	leverAges = &leverAgeCollector{since: map[[2]string]leverSince{}}
	passes    = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "floodgate_policy_passes_total",
		Help: "Reconcile passes of each TrafficPolicy: what a watched change costs, policy by policy.",
	}, []string{"namespace", "policy"})
	leverConfirmed = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "floodgate_lever_confirmed_seconds",
		Help: "Time from a lever's write to the first round of probes through the data plane that landed as it says, by the action in force.",
		// From a proxy that applies at once to one that waits its throttle and a grace's worth.
		Buckets: []float64{0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120},
	}, []string{"action"})

	registerOnce sync.Once
)

// Metrics records the controller's metrics in controller-runtime's registry. A nil *Metrics
// records nothing (previews).
type Metrics struct {
	Clock clock.PassiveClock
}

// NewMetrics registers the metrics (once per process) and returns a recorder on clk.
func NewMetrics(clk clock.PassiveClock) *Metrics {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(policyAction, policyPhase, rampStep, gateVerdictGauge, leverFlips, leverAges, passes, leverConfirmed)
		// Each action's series is there from the start (a dashboard shows 0, not "no data").
		for _, a := range []v1alpha1.Action{v1alpha1.ActionNormal, v1alpha1.ActionShedAll, v1alpha1.ActionRamp} {
			leverConfirmed.WithLabelValues(string(a))
		}
	})
	return &Metrics{Clock: clk}
}

func (m *Metrics) gateVerdict(p *v1alpha1.TrafficPolicy, gate string, v v1alpha1.Verdict) {
	if m == nil {
		return
	}
	value := map[v1alpha1.Verdict]float64{v1alpha1.VerdictPass: 1, v1alpha1.VerdictFail: 0, v1alpha1.VerdictUnknown: -1}[v]
	gateVerdictGauge.WithLabelValues(p.Namespace, p.Name, gate).Set(value)
}

// LeverConfirmed observes how long the data plane took to answer as a lever says.
func (m *Metrics) LeverConfirmed(action v1alpha1.Action, took time.Duration) {
	if m == nil {
		return
	}
	leverConfirmed.WithLabelValues(string(action)).Observe(took.Seconds())
}

// pass counts a reconcile pass of a policy.
func (m *Metrics) pass(p *v1alpha1.TrafficPolicy) {
	if m == nil {
		return
	}
	passes.WithLabelValues(p.Namespace, p.Name).Inc()
}

// record updates the per-policy metrics after a committed plan.
func (m *Metrics) record(p *v1alpha1.TrafficPolicy, prevAction v1alpha1.Action) {
	if m == nil {
		return
	}
	st := p.Status
	for _, a := range []v1alpha1.Action{v1alpha1.ActionNormal, v1alpha1.ActionShedAll, v1alpha1.ActionRamp} {
		v := 0.0
		if a == st.ObservedAction {
			v = 1
		}
		policyAction.WithLabelValues(p.Namespace, p.Name, string(a)).Set(v)
	}
	for _, ph := range phases {
		v := 0.0
		if ph == st.Phase {
			v = 1
		}
		policyPhase.WithLabelValues(p.Namespace, p.Name, string(ph)).Set(v)
	}
	step := 0.0
	if st.Ramp != nil && st.ObservedAction == v1alpha1.ActionRamp {
		step = float64(st.Ramp.Step)
	}
	rampStep.WithLabelValues(p.Namespace, p.Name).Set(step)
	if prevAction != st.ObservedAction && !(prevAction == "" && st.ObservedAction == v1alpha1.ActionNormal) {
		leverFlips.WithLabelValues(p.Namespace, p.Name, string(st.ObservedAction)).Inc()
	}
	leverAges.set(p.Namespace, p.Name, leverPulledSince(p), m.Clock)
}

// forget removes a deleted policy's series.
func (m *Metrics) forget(p *v1alpha1.TrafficPolicy) {
	if m == nil {
		return
	}
	labels := prometheus.Labels{"namespace": p.Namespace, "policy": p.Name}
	policyAction.DeletePartialMatch(labels)
	policyPhase.DeletePartialMatch(labels)
	rampStep.DeletePartialMatch(labels)
	gateVerdictGauge.DeletePartialMatch(labels)
	leverFlips.DeletePartialMatch(labels)
	passes.DeletePartialMatch(labels)
	leverAges.set(p.Namespace, p.Name, nil, nil)
}

// phases are every phase a policy can be in, for floodgate_policy_phase.
var phases = []v1alpha1.Phase{v1alpha1.PhaseNormal, v1alpha1.PhaseShedding, v1alpha1.PhaseRamping, v1alpha1.PhasePaused,
	v1alpha1.PhaseReleasing, v1alpha1.PhaseCompleted, v1alpha1.PhaseRestoring}

// leverPulledSince is when the policy left Normal, or nil when it is at rest.
func leverPulledSince(p *v1alpha1.TrafficPolicy) *time.Time {
	if p.Status.LeverPulledAt == nil {
		return nil
	}
	t := p.Status.LeverPulledAt.Time
	return &t
}

type leverSince struct {
	at    time.Time
	clock clock.PassiveClock
}

// leverAgeCollector reports floodgate_lever_age_seconds at scrape time, so the age grows between
// reconciles without the controller writing anything.
type leverAgeCollector struct {
	mu    sync.Mutex
	since map[[2]string]leverSince
}

var leverAgeDesc = prometheus.NewDesc("floodgate_lever_age_seconds",
	"How long a TrafficPolicy has been away from Normal (absent at rest).", []string{"namespace", "policy"}, nil)

func (c *leverAgeCollector) set(ns, name string, at *time.Time, clk clock.PassiveClock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at == nil {
		delete(c.since, [2]string{ns, name})
		return
	}
	c.since[[2]string{ns, name}] = leverSince{at: *at, clock: clk}
}

func (c *leverAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- leverAgeDesc }

func (c *leverAgeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, s := range c.since {
		ch <- prometheus.MustNewConstMetric(leverAgeDesc, prometheus.GaugeValue, s.clock.Since(s.at).Seconds(), k[0], k[1])
	}
}
