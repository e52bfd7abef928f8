package core

import (
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// DefaultPassFor is how long gates must pass unless spec.ramp.gate.passFor says otherwise.
const DefaultPassFor = 30 * time.Second

// DefaultGateInterval is how often gates are read unless spec.ramp.gate.interval says otherwise.
const DefaultGateInterval = 10 * time.Second

// GateInterval is the policy's gate reading interval.
func GateInterval(spec v1alpha1.TrafficPolicySpec) time.Duration {
	if spec.Ramp != nil && spec.Ramp.Gate.Interval != nil && spec.Ramp.Gate.Interval.Duration > 0 {
		return spec.Ramp.Gate.Interval.Duration
	}
	return DefaultGateInterval
}

func passFor(spec v1alpha1.TrafficPolicySpec) time.Duration {
	if spec.Ramp.Gate.PassFor != nil {
		return spec.Ramp.Gate.PassFor.Duration
	}
	return DefaultPassFor
}

// gateVerdict sums up a step's gate readings.
type gateVerdict struct {
	ok      bool // every gate passed for passFor
	wait    time.Duration
	failing string // first failing gate
	unknown string // first unknown gate
}

func judgeGates(in PlanInput, r *v1alpha1.RampStatus, gates []v1alpha1.Gate, now metav1.Time) gateVerdict {
	if len(gates) == 0 {
		r.Gates, r.GatesPassingSince = nil, nil
		return gateVerdict{ok: true}
	}
	r.Gates = in.GateReadings
	byName := map[string]v1alpha1.GateStatus{}
	for _, g := range in.GateReadings {
		byName[g.Name] = g
	}
	v := gateVerdict{}
	allPass, pending := true, false
	for _, g := range gates {
		reading, read := byName[g.Name]
		switch {
		case slices.Contains(in.PendingGates, g.Name):
			allPass, pending = false, true
		case !read || reading.Verdict == v1alpha1.VerdictUnknown:
			allPass = false
			if v.unknown == "" {
				v.unknown = g.Name
			}
		case reading.Verdict == v1alpha1.VerdictFail:
			allPass = false
			if v.failing == "" {
				v.failing = g.Name
			}
		}
	}
	if !allPass {
		if !pending || v.unknown != "" || v.failing != "" {
			r.GatesPassingSince = nil
		}
		v.wait = GateInterval(in.Spec)
		return v
	}
	if r.GatesPassingSince == nil {
		r.GatesPassingSince = &now
	}
	left := r.GatesPassingSince.Add(passFor(in.Spec)).Sub(in.Now)
	v.ok = left <= 0
	v.wait = min(max(left, 0), GateInterval(in.Spec))
	return v
}

// Rejudge names the first unknown and the first failing gate again, from readings taken after
// the plan was made (a step the plan just entered): a gate whose reading is on its way is neither.
func (p *Plan) Rejudge(gates []v1alpha1.Gate, readings []v1alpha1.GateStatus, pending []string) {
	p.gates.unknown, p.gates.failing = "", ""
	for _, g := range gates {
		i := slices.IndexFunc(readings, func(r v1alpha1.GateStatus) bool { return r.Name == g.Name })
		switch {
		case slices.Contains(pending, g.Name):
		case (i < 0 || readings[i].Verdict == v1alpha1.VerdictUnknown) && p.gates.unknown == "":
			p.gates.unknown = g.Name
		case i >= 0 && readings[i].Verdict == v1alpha1.VerdictFail && p.gates.failing == "":
			p.gates.failing = g.Name
		}
	}
}
