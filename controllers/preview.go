package controllers

import (
	"context"
	"time"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/autoscaler"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/provider"
)

// PreviewResult is what a change to a policy would do, computed by the reconciler's own code.
type PreviewResult struct {
	Plan core.Plan
	// Held is true when the ramp would hold where it is: the step cannot be applied everywhere.
	Held bool
	// Changes are what would be written to every target and autoscaler.
	Changes []provider.ObjectChange
	// Problems keep the lever from some objects (or, when Held, from all).
	Problems []provider.Problem
	// Unsupported lists what targets cannot take, per step ("step 2 on Ingress x: ...").
	Unsupported []string
}

// Preview plans a policy (as it would be after a change) at now and returns what the reconcile
// would write to every target and autoscaler, and what would keep it from some of them. It
// writes nothing: it is `kubectl floodgate --dry-run`, on the controller's own code and
// decisions. Targets and autoscalers the spec no longer names are shown being put back.
func (r *TrafficPolicyReconciler) Preview(ctx context.Context, policy *v1alpha1.TrafficPolicy, now time.Time) (PreviewResult, error) {
	plan, obs, err := r.planAndObserve(ctx, policy, now)
	res := PreviewResult{Plan: plan}
	if err != nil {
		return res, err
	}
	for _, o := range obs.targets {
		if o.Found {
			res.Unsupported = append(res.Unsupported, unsupportedSummary([]v1alpha1.TargetStatus{o.Status})...)
		}
	}
	if blockers := obs.rampBlockers(); isRampStep(plan.Phase) && len(blockers) > 0 {
		res.Held, res.Problems = true, blockers
		return res, nil
	}
	res.Problems = append(obs.problems(), obs.leftoverProblems()...)

	traffic := plan.Knobs.Traffic()
	add := func(c []provider.ObjectChange, err error) error {
		res.Changes = append(res.Changes, c...)
		return err
	}
	for _, o := range obs.targets {
		if write, k := targetKnobs(o, traffic); write && o.Found {
			if err := add(r.Ingress.Preview(ctx, policy, o, k, recordCopy(policy.Status.Targets, o.Ref.Name))); err != nil {
				return res, err
			}
		}
	}
	for _, o := range obs.leftoverTargets {
		if write, _ := targetKnobs(o, knobs.Knobs{}); write && o.Found {
			if err := add(r.Ingress.Preview(ctx, policy, o, knobs.Knobs{}, recordCopy(policy.Status.Targets, o.Ref.Name))); err != nil {
				return res, err
			}
		}
	}
	previewHold := func(o *autoscaler.Observation, level autoscaler.Level) error {
		if !autoscalerWritable(o) {
			return nil
		}
		c, err := r.HPA.Preview(ctx, policy, o, level, autoscalerRecordCopy(policy.Status.Autoscalers, o.Name))
		return add([]provider.ObjectChange{c}, err)
	}
	for _, o := range obs.autoscalers {
		if err := previewHold(o, holdLevel(policy.Status.Autoscalers, o.Name, plan.Knobs)); err != nil {
			return res, err
		}
	}
	for _, o := range obs.leftoverAutoscalers {
		if err := previewHold(o, autoscaler.Level{}); err != nil {
			return res, err
		}
	}
	return res, nil
}
