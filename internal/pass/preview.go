package pass

import (
	"context"
	"time"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/provider"
)

// PreviewResult is what a change to a policy would do, computed by the reconciler's own code.
type PreviewResult struct {
	Plan core.Plan
	// Held is true when the ramp would hold where it is: the step cannot be applied everywhere.
	Held bool
	// Changes are what would be written to every object.
	Changes []provider.ObjectChange
	// Problems keep the lever from some objects (or, when Held, from all).
	Problems []provider.Problem
	// Unsupported lists what targets cannot take, per step ("step 2 on Ingress x: ...").
	Unsupported []string
	// Targets are the targets found, named and selected.
	Targets []provider.Ref
	// Served says, of the first targets found (as many as status lists), whose settings are
	// written and which data planes serve them.
	Served []ServedTarget
}

// ServedTarget is a target's provider and data planes, as a pass resolves them.
type ServedTarget struct {
	Ref        provider.Ref
	Provider   string
	DataPlanes []string
	// Warning says what writing another data plane's settings means ("": nothing to say).
	Warning string
}

// Preview plans a policy (as it would be after a change) at now and returns what the reconcile
// would write to every object, and what would keep it from some of them. It writes nothing: it
// is `kubectl floodgate --dry-run`, rendered by the same providers and decisions as a pass, with
// only the write left out. Objects the spec no longer names are shown being put back.
func (r *Pass) Preview(ctx context.Context, policy *v1alpha1.TrafficPolicy, now time.Time) (PreviewResult, error) {
	plan, obs, err := r.PlanAndObserve(ctx, policy, core.PlanInput{Spec: policy.Spec, Status: policy.Status, Now: now,
		Request: core.PendingRequest(policy), GateReadings: gatesInStatus(policy)})
	res := PreviewResult{Plan: plan}
	if err != nil {
		return res, err
	}
	for _, obj := range obs.of(provider.Target, false) {
		if obj.obs.Found {
			res.Targets = append(res.Targets, obj.ref)
			if len(res.Served) < MaxListedTargets {
				res.Served = append(res.Served, servedTarget(obj))
			}
			res.Unsupported = append(res.Unsupported, UnsupportedSummary([]v1alpha1.TargetStatus{targetStatusOf(obj, obj.obs.Status)})...)
		}
	}
	if blockers := obs.RampBlockers(); IsRampStep(plan.Phase) && len(blockers) > 0 {
		res.Held, res.Problems = true, blockers
		return res, nil
	}
	res.Problems = append(obs.Problems(), obs.LeftoverProblems()...)
	for _, obj := range obs.objects {
		write, d := decide(obj, desired(policy, obj, plan.Knobs))
		if !write || !obj.obs.Found {
			continue
		}
		ch, err := obj.provider.Render(policy, obj.obs, d, recordCopy(policy, obj))
		if err != nil {
			return res, err
		}
		changes, err := provider.Preview(ctx, r.Client, policy, ch)
		if err != nil {
			return res, err
		}
		res.Changes = append(res.Changes, changes...)
	}
	return res, nil
}

// gatesInStatus are the gate readings status holds: a preview reads no gate.
func gatesInStatus(policy *v1alpha1.TrafficPolicy) []v1alpha1.GateStatus {
	if policy.Status.Ramp == nil {
		return nil
	}
	return policy.Status.Ramp.Gates
}

// PlanAndObserve plans the policy and reads every object for that plan (Plan, Observe, Settle).
func (r *Pass) PlanAndObserve(ctx context.Context, policy *v1alpha1.TrafficPolicy, in core.PlanInput) (core.Plan, Observation, error) {
	plan := Plan(&in)
	obs, err := r.Observe(ctx, policy, plan.Knobs)
	if err != nil {
		return plan, obs, err
	}
	return Settle(&in, plan, obs), obs, nil
}

// Plan plans the policy before its objects are read, assuming the default stabilization window
// when in names none.
func Plan(in *core.PlanInput) core.Plan {
	if in.DefaultReleaseAfter == 0 {
		in.DefaultReleaseAfter = provider.DefaultStabilizationWindow
	}
	return core.MakePlan(*in)
}

// Settle settles a plan on what its objects are: the autoscalers' stabilization window, known
// only once they are read, is the least release time; when it differs from the one assumed,
// the (pure) plan is made again.
func Settle(in *core.PlanInput, plan core.Plan, obs Observation) core.Plan {
	if window := obs.LongestWindow(); window != in.DefaultReleaseAfter {
		in.DefaultReleaseAfter = window
		return core.MakePlan(*in)
	}
	return plan
}

// LongestWindow is the longest scale-down stabilization window of the held autoscalers: a hold
// is released over no less.
func (o Observation) LongestWindow() time.Duration {
	longest := time.Duration(0)
	for _, a := range o.of(provider.Autoscaler, false) {
		longest = max(longest, a.obs.StabilizationWindow)
	}
	if longest == 0 {
		return provider.DefaultStabilizationWindow
	}
	return longest
}

// servedTarget is what status says of an object's provider and data planes.
func servedTarget(obj *object) ServedTarget {
	t := ServedTarget{Ref: obj.ref, DataPlanes: obj.resolved.Strings(), Warning: obj.resolved.Warning}
	if c := obj.obs.Status.Target.Capabilities; c != nil {
		t.Provider = c.Provider
	}
	return t
}
