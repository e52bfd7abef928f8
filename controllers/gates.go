package controllers

import (
	"context"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/gate"
)

// stepGates returns the gates of a ramp step (1-based), or nil.
func stepGates(spec v1alpha1.TrafficPolicySpec, step int32) []v1alpha1.Gate {
	if spec.Ramp == nil || step < 1 || int(step) > len(spec.Ramp.Steps) {
		return nil
	}
	return spec.Ramp.Steps[step-1].Gates
}

// gateReadings returns the current step's gate readings for the plan, and the gates whose
// reading is on its way (pending: the step neither moves on nor loses its passing streak while
// one is). Workload gates are read now, from the cache; network gates (webhook, Prometheus) as
// the poller last read them apart from this pass, which asks it for fresh ones when they are due.
// No network I/O happens here.
func (r *TrafficPolicyReconciler) gateReadings(policy *v1alpha1.TrafficPolicy, now time.Time) ([]v1alpha1.GateStatus, []string) {
	st := policy.Status.Ramp
	if r.Gates == nil || policy.Spec.Action != v1alpha1.ActionRamp || policy.Status.ObservedAction != v1alpha1.ActionRamp ||
		st == nil || st.ShedByGate != "" || policy.Spec.Ramp.Paused {
		if st != nil {
			return st.Gates, nil
		}
		return nil, nil
	}
	gates := stepGates(policy.Spec, st.Step)
	if len(gates) == 0 || st.StepStartedAt == nil {
		return nil, nil
	}
	return r.readStepGates(policy, gates, st.Gates, st.StepStartedAt.Time, now)
}

// readStepGates reads a step's gates as gateReadings says, given the readings status holds and
// when the step started (a reading taken before it does not count for the step).
func (r *TrafficPolicyReconciler) readStepGates(policy *v1alpha1.TrafficPolicy, gates []v1alpha1.Gate, held []v1alpha1.GateStatus, stepStart, now time.Time) ([]v1alpha1.GateStatus, []string) {
	interval := core.GateInterval(policy.Spec)
	var network map[string]gate.Result
	if r.GatePoller != nil {
		network = r.GatePoller.Get(policy, gates, interval)
	}
	var out []v1alpha1.GateStatus
	var pending []string
	for _, g := range gates {
		prev, hadPrev := heldReading(held, g.Name, stepStart)
		if !gate.IsNetwork(g) {
			out = append(out, r.readWorkloadGate(policy, g, prev, hadPrev, now, interval))
			continue
		}
		reading, ok := prev, hadPrev
		if res := network[g.Name]; !res.ReadAt.IsZero() && !res.ReadAt.Before(stepStart) && (!ok || reading.ReadAt == nil || res.ReadAt.After(reading.ReadAt.Time)) {
			at := metav1.NewTime(res.ReadAt)
			reading, ok = v1alpha1.GateStatus{Name: g.Name, Verdict: res.Reading.Verdict, Reading: res.Reading.Reading, Reason: res.Reading.Reason, ReadAt: &at}, true
			r.Metrics.gateVerdict(policy, g.Name, reading.Verdict)
		}
		// A reading is trusted for its interval and the time a fresh one may take; past that (an
		// operator that was down, a reader not done yet) the step waits for the fresh one.
		if !ok || reading.ReadAt == nil || now.After(reading.ReadAt.Add(interval+gate.Timeout(g)+time.Second)) {
			pending = append(pending, g.Name)
		}
		if ok {
			out = append(out, reading)
		}
	}
	return out, pending
}

// readWorkloadGate reads a workload gate from the cache. Between intervals a reading that did
// not change keeps its time, so an unchanged fleet writes nothing; a Deployment's change wakes
// the policy.
func (r *TrafficPolicyReconciler) readWorkloadGate(policy *v1alpha1.TrafficPolicy, g v1alpha1.Gate, prev v1alpha1.GateStatus, hadPrev bool, now time.Time, interval time.Duration) v1alpha1.GateStatus {
	reading := r.Gates.Read(context.Background(), policy, g)
	due := !hadPrev || prev.ReadAt == nil || !now.Before(prev.ReadAt.Add(interval))
	if !due && reading.Verdict == prev.Verdict && reading.Reading == prev.Reading && reading.Reason == prev.Reason {
		return prev
	}
	at := metav1.NewTime(now)
	r.Metrics.gateVerdict(policy, g.Name, reading.Verdict)
	return v1alpha1.GateStatus{Name: g.Name, Verdict: reading.Verdict, Reading: reading.Reading, Reason: reading.Reason, ReadAt: &at}
}

// heldReading is the reading status holds for a gate, when it was taken in the current step.
func heldReading(held []v1alpha1.GateStatus, name string, stepStart time.Time) (v1alpha1.GateStatus, bool) {
	i := slices.IndexFunc(held, func(g v1alpha1.GateStatus) bool { return g.Name == name })
	if i < 0 || held[i].ReadAt == nil || held[i].ReadAt.Time.Before(stepStart) {
		return v1alpha1.GateStatus{}, false
	}
	return held[i], true
}

// readNewStepGates starts reading the gates of a step the plan just entered: workload gates are
// read now, so status shows them at once; network gates are asked of the poller, and their
// readings wake the policy when they arrive.
func (r *TrafficPolicyReconciler) readNewStepGates(policy *v1alpha1.TrafficPolicy, plan *core.Plan, now time.Time) {
	if r.Gates == nil || plan.Ramp == nil || plan.Phase != v1alpha1.PhaseRamping {
		return
	}
	prev := int32(0)
	if policy.Status.Ramp != nil && policy.Status.ObservedAction == v1alpha1.ActionRamp {
		prev = policy.Status.Ramp.Step
	}
	if plan.Ramp.Step == prev {
		return
	}
	gates := stepGates(policy.Spec, plan.Ramp.Step)
	if len(gates) == 0 || plan.Ramp.StepStartedAt == nil {
		return
	}
	readings, pending := r.readStepGates(policy, gates, nil, plan.Ramp.StepStartedAt.Time, now)
	plan.Ramp.Gates, plan.Ramp.GatesPassingSince = readings, nil
	plan.Rejudge(gates, readings, pending)
	if len(pending) == 0 && allPass(readings) {
		at := metav1.NewTime(now)
		plan.Ramp.GatesPassingSince = &at
	}
}

func allPass(readings []v1alpha1.GateStatus) bool {
	for _, g := range readings {
		if g.Verdict != v1alpha1.VerdictPass {
			return false
		}
	}
	return len(readings) > 0
}
