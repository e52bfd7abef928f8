package controllers

import (
	"context"
	"time"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/autoscaler"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/provider"
)

// Preview plans a policy (as it would be after a change) at now and returns the plan, what the
// reconcile would write to every target and autoscaler, and what would keep it from being
// applied. It writes nothing: it is `kubectl floodgate --dry-run`, on the controller's own code.
// Targets and autoscalers the spec no longer names are shown being put back.
func (r *TrafficPolicyReconciler) Preview(ctx context.Context, policy *v1alpha1.TrafficPolicy, now time.Time) (Plan, []provider.ObjectChange, []provider.Problem, error) {
	plan, obs, err := r.planAndObserve(ctx, policy, now)
	if err != nil {
		return plan, nil, nil, err
	}
	problems := append(obs.problems, obs.leftoverProblems...)
	var changes []provider.ObjectChange
	previewTargets := func(targets []*provider.Observation, k knobs.Knobs) error {
		for _, o := range targets {
			if !o.Found || blocked(o.Problems) {
				continue
			}
			c, err := r.Ingress.Preview(ctx, policy, o, k, recordCopy(policy.Status.Targets, o.Ref.Name))
			if err != nil {
				return err
			}
			changes = append(changes, c...)
		}
		return nil
	}
	previewAutoscalers := func(autoscalers []*autoscaler.Observation, level func(name string) autoscaler.Level) error {
		for _, o := range autoscalers {
			if blocked(o.Problems) {
				continue
			}
			c, err := r.HPA.Preview(ctx, policy, o, level(o.Name), autoscalerRecordCopy(policy.Status.Autoscalers, o.Name))
			if err != nil {
				return err
			}
			changes = append(changes, c)
		}
		return nil
	}
	for _, err := range []error{
		previewTargets(obs.targets, plan.Knobs.Traffic()),
		previewTargets(obs.leftoverTargets, knobs.Knobs{}),
		previewAutoscalers(obs.autoscalers, func(name string) autoscaler.Level { return holdLevel(policy.Status.Autoscalers, name, plan.Knobs) }),
		previewAutoscalers(obs.leftoverAutoscalers, func(string) autoscaler.Level { return autoscaler.Level{} }),
	} {
		if err != nil {
			return plan, nil, problems, err
		}
	}
	return plan, changes, problems, nil
}
