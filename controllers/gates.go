package controllers

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// stepGates returns the gates of a ramp step (1-based), or nil.
func stepGates(spec v1alpha1.TrafficPolicySpec, step int32) []v1alpha1.Gate {
	if spec.Ramp == nil || step < 1 || int(step) > len(spec.Ramp.Steps) {
		return nil
	}
	return spec.Ramp.Steps[step-1].Gates
}

// gateReadings returns the current step's gate readings: fresh when they are due (none yet for
// this step, or older than the interval), otherwise those in status.
func (r *TrafficPolicyReconciler) gateReadings(ctx context.Context, policy *v1alpha1.TrafficPolicy, now time.Time) []v1alpha1.GateStatus {
	st := policy.Status.Ramp
	if r.Gates == nil || policy.Spec.Action != v1alpha1.ActionRamp || policy.Status.ObservedAction != v1alpha1.ActionRamp ||
		st == nil || st.ShedByGate != "" || policy.Spec.Ramp.Paused {
		if st != nil {
			return st.Gates
		}
		return nil
	}
	gates := stepGates(policy.Spec, st.Step)
	if len(gates) == 0 {
		return nil
	}
	if !gatesDue(st.Gates, gates, now, GateInterval(policy.Spec)) {
		return r.refreshWorkloadGates(ctx, policy, gates, st.Gates, now)
	}
	return r.readGates(ctx, policy, gates, now)
}

// refreshWorkloadGates re-reads workload gates between intervals (they are cache reads, and a
// Deployment's change wakes the policy); a reading that did not change keeps its time, so an
// unchanged fleet writes nothing.
func (r *TrafficPolicyReconciler) refreshWorkloadGates(ctx context.Context, policy *v1alpha1.TrafficPolicy, gates []v1alpha1.Gate, readings []v1alpha1.GateStatus, now time.Time) []v1alpha1.GateStatus {
	out := make([]v1alpha1.GateStatus, len(readings))
	copy(out, readings)
	for i, g := range gates {
		if g.WorkloadReady == nil {
			continue
		}
		reading := r.Gates.Read(ctx, policy, g)
		if reading.Verdict == out[i].Verdict && reading.Reading == out[i].Reading && reading.Reason == out[i].Reason {
			continue
		}
		at := metav1.NewTime(now)
		out[i] = v1alpha1.GateStatus{Name: g.Name, Verdict: reading.Verdict, Reading: reading.Reading, Reason: reading.Reason, ReadAt: &at}
		r.Metrics.gateVerdict(policy, g.Name, reading.Verdict)
	}
	return out
}

func gatesDue(readings []v1alpha1.GateStatus, gates []v1alpha1.Gate, now time.Time, interval time.Duration) bool {
	if len(readings) != len(gates) {
		return true
	}
	for i, g := range gates {
		if readings[i].Name != g.Name || readings[i].ReadAt == nil || !now.Before(readings[i].ReadAt.Add(interval)) {
			return true
		}
	}
	return false
}

func (r *TrafficPolicyReconciler) readGates(ctx context.Context, policy *v1alpha1.TrafficPolicy, gates []v1alpha1.Gate, now time.Time) []v1alpha1.GateStatus {
	at := metav1.NewTime(now)
	out := make([]v1alpha1.GateStatus, 0, len(gates))
	for _, g := range gates {
		reading := r.Gates.Read(ctx, policy, g)
		out = append(out, v1alpha1.GateStatus{Name: g.Name, Verdict: reading.Verdict, Reading: reading.Reading, Reason: reading.Reason, ReadAt: &at})
		r.Metrics.gateVerdict(policy, g.Name, reading.Verdict)
	}
	return out
}

// readNewStepGates reads the gates of a step the plan just entered, so status shows them at once.
func (r *TrafficPolicyReconciler) readNewStepGates(ctx context.Context, policy *v1alpha1.TrafficPolicy, plan *Plan, now time.Time) {
	if r.Gates == nil || plan.Ramp == nil || plan.Phase != v1alpha1.PhaseRamping {
		return
	}
	prev := int32(0)
	if policy.Status.Ramp != nil {
		prev = policy.Status.Ramp.Step
	}
	if plan.Ramp.Step == prev && len(plan.Ramp.Gates) > 0 {
		return
	}
	if gates := stepGates(policy.Spec, plan.Ramp.Step); len(gates) > 0 {
		plan.Ramp.Gates = r.readGates(ctx, policy, gates, now)
		plan.Ramp.GatesPassingSince = nil
		if allPass(plan.Ramp.Gates) {
			at := metav1.NewTime(now)
			plan.Ramp.GatesPassingSince = &at
		}
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
