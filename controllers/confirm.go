package controllers

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/confirm"
	"floodgate.dev/floodgate/internal/shed"
)

// confirmLever asks the confirmer to confirm the lever the pass committed: the probes of every
// target's routes, and where each should land. Nothing is asked at rest when no lever was pulled
// since the policy was made, or when Normal is confirmed already: at rest nothing is probed.
func (r *TrafficPolicyReconciler) confirmLever(s *passState) {
	if r.Confirmer == nil {
		return
	}
	policy := s.policy
	atRest := s.plan.Phase == v1alpha1.PhaseNormal || s.plan.Phase == v1alpha1.PhaseCompleted
	if atRest {
		if !slices.ContainsFunc(policy.Status.History, func(h v1alpha1.Transition) bool { return h.Action != v1alpha1.ActionNormal }) {
			return // no lever was pulled since the policy was made (as far as its history goes)
		}
		if c := meta.FindStatusCondition(policy.Status.Conditions, v1alpha1.ConditionConfirmed); c != nil &&
			c.Status == metav1.ConditionTrue && c.ObservedGeneration == policy.Generation {
			if _, asked := r.Confirmer.Verdict(client.ObjectKeyFromObject(policy), policy.UID); !asked {
				return // confirmed before this manager started
			}
		}
	}
	traffic := s.plan.Knobs.Traffic()
	answer := shed.AnswerOf(policy, r.RedirectHosts)
	routes := s.obs.TargetNamedRoutes()
	var targets []confirm.Target
	for _, t := range policy.Status.Targets {
		name := string(t.Kind) + "/" + t.Name
		if t.Found {
			targets = append(targets, confirm.Target{Name: name, DataPlanes: t.DataPlanes, Routes: routes[name]})
		}
	}
	plan := confirm.MakePlan(confirm.Input{Policy: policy, Knobs: traffic, Answer: answer, Targets: targets,
		Defaults: r.ConfirmAddresses, Keyed: len(r.ProbeKey) > 0})
	r.Confirmer.Set(client.ObjectKeyFromObject(policy), policy.UID, confirm.Lever{
		Key:        fmt.Sprintf("%s|%+v|%d|%s", s.plan.ObservedAction, traffic, answer.StatusCode, answer.Redirect),
		Action:     s.plan.ObservedAction,
		Policy:     policy.Namespace + "/" + policy.Name,
		Generation: policy.Generation,
		Token:      shed.ProbeToken(r.ProbeKey, policy.UID),
		Plan:       plan,
		Settings:   confirm.SettingsOf(policy.Spec),
		AtRest:     atRest,
	})
}

// noteConfirmed files what the confirmer knows of the lever into status: the Confirmed
// condition, and each target's confirmedAt and confirmMessage. A policy nothing was asked of
// keeps what status says, or is told why nothing is probed.
func (r *TrafficPolicyReconciler) noteConfirmed(policy *v1alpha1.TrafficPolicy) {
	if r.Confirmer == nil {
		return
	}
	v, ok := r.Confirmer.Verdict(client.ObjectKeyFromObject(policy), policy.UID)
	if !ok {
		if meta.FindStatusCondition(policy.Status.Conditions, v1alpha1.ConditionConfirmed) == nil {
			meta.SetStatusCondition(&policy.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionConfirmed,
				Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonNotProbed, ObservedGeneration: policy.Generation,
				Message: "no lever has been pulled since the policy was made: there is nothing to confirm yet"})
		}
		return
	}
	c := confirm.Condition(v, confirm.SettingsOf(policy.Spec).Grace, r.Confirmer.Now())
	c.ObservedGeneration = policy.Generation
	meta.SetStatusCondition(&policy.Status.Conditions, c)
	messages := confirm.TargetMessages(v)
	for i := range policy.Status.Targets {
		t := &policy.Status.Targets[i]
		name := string(t.Kind) + "/" + t.Name
		t.ConfirmedAt, t.ConfirmMessage = nil, messages[name]
		if at, ok := v.TargetsConfirmedAt[name]; ok {
			stamp := metav1.NewTime(at).Rfc3339Copy()
			t.ConfirmedAt = &stamp
		}
	}
}
