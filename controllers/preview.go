package controllers

import (
	"context"
	"time"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
)

// Preview plans a policy (as it would be after a change) at now and returns the plan, what the
// reconcile would write to every target and autoscaler, and what would keep it from being
// applied. It writes nothing: it is `kubectl floodgate --dry-run`, on the controller's own code.
func (r *TrafficPolicyReconciler) Preview(ctx context.Context, policy *v1alpha1.TrafficPolicy, now time.Time) (Plan, []provider.ObjectChange, []provider.Problem, error) {
	in := PlanInput{Spec: policy.Spec, Status: policy.Status, Now: now, DefaultReleaseAfter: DefaultStabilizationWindow,
		Request: PendingRequest(policy)}
	plan := MakePlan(in)
	obs, err := r.observe(ctx, policy, plan.Knobs)
	if err != nil {
		return plan, nil, nil, err
	}
	if window := longestWindow(obs.autoscalers); window != in.DefaultReleaseAfter {
		in.DefaultReleaseAfter = window
		plan = MakePlan(in)
	}
	var changes []provider.ObjectChange
	for _, o := range obs.targets {
		if !o.Found || blocked(o.Problems) {
			continue
		}
		c, err := r.Ingress.Preview(ctx, policy, o, plan.Knobs.Traffic(), recordCopy(policy.Status.Targets, o.Ref.Name))
		if err != nil {
			return plan, nil, obs.problems, err
		}
		changes = append(changes, c...)
	}
	for _, o := range obs.autoscalers {
		if blocked(o.Problems) {
			continue
		}
		c, err := r.HPA.Preview(ctx, policy, o, holdLevel(policy.Status.Autoscalers, o.Name, plan.Knobs), autoscalerRecordCopy(policy.Status.Autoscalers, o.Name))
		if err != nil {
			return plan, nil, obs.problems, err
		}
		changes = append(changes, c)
	}
	return plan, changes, obs.problems, nil
}
