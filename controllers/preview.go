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
	plan, obs, err := r.planAndObserve(ctx, policy, now)
	if err != nil {
		return plan, nil, nil, err
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
