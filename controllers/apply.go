package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/autoscaler"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/shed"
)

// observation is what was read about every target and autoscaler before any write. Each
// object carries its own problems: whether the rest proceeds is decided per lever (see
// rampBlockers and targetKnobs).
type observation struct {
	targets     []*provider.Observation
	autoscalers []*autoscaler.Observation
	// leftovers are the targets and autoscalers the policy changed that its spec no longer
	// names: they are put back whatever the knobs.
	leftoverTargets     []*provider.Observation
	leftoverAutoscalers []*autoscaler.Observation
}

// problems are every problem of the objects the spec names.
func (o observation) problems() []provider.Problem {
	var out []provider.Problem
	for _, t := range o.targets {
		out = append(out, t.Problems...)
	}
	for _, a := range o.autoscalers {
		out = append(out, a.Problems...)
	}
	return out
}

// leftoverProblems are the problems putting back objects the spec no longer names: only a record
// that cannot be read (another policy's record means the object is not this policy's).
func (o observation) leftoverProblems() []provider.Problem {
	var out []provider.Problem
	for _, t := range o.leftoverTargets {
		out = append(out, corrupt(t.Problems)...)
	}
	for _, a := range o.leftoverAutoscalers {
		out = append(out, corrupt(a.Problems)...)
	}
	return out
}

// rampBlockers are the problems that keep a ramp step from being applied: nothing of a step is
// half applied, so the ramp holds at its previous step while any target that exists cannot take
// the step (conflict, unsupported setting, unreadable record) or any autoscaler's hold cannot be
// applied (missing, conflict, another controller's). A target that does not exist carries no
// traffic: it takes the step in force when it appears.
func (o observation) rampBlockers() []provider.Problem {
	var out []provider.Problem
	for _, t := range o.targets {
		if t.Found {
			out = append(out, t.Problems...)
		}
	}
	for _, a := range o.autoscalers {
		out = append(out, a.Problems...)
	}
	return out
}

// isRampStep reports whether a phase puts a ramp step in force (the only lever that holds when it
// cannot be applied everywhere; ShedAll, Normal, releases and restores are always applied).
func isRampStep(phase v1alpha1.Phase) bool {
	return phase == v1alpha1.PhaseRamping || phase == v1alpha1.PhasePaused
}

// observe reads every target and autoscaler; it writes nothing.
func (r *TrafficPolicyReconciler) observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, k knobs.Knobs) (observation, error) {
	var obs observation
	steps := core.StepKnobs(policy.Spec)
	for _, ref := range policy.Spec.TargetRefs {
		o, err := r.Ingress.Observe(ctx, policy, ref, k.Traffic())
		if err != nil {
			return obs, err
		}
		if !o.Found {
			o.Problems = append(o.Problems, provider.Problem{Reason: v1alpha1.ReasonTargetNotFound,
				Message: fmt.Sprintf("%s %s not found in namespace %s", ref.Kind, ref.Name, policy.Namespace)})
		} else {
			o.Status.Unsupported = r.unsupportedSteps(policy, o, steps)
		}
		if k.Traffic().Sheds() && o.Found {
			notOurs, err := r.Shed.CompanionsNotOurs(ctx, r.Client, policy, ref.Name)
			if err != nil {
				return obs, err
			}
			for _, msg := range notOurs {
				o.Problems = append(o.Problems, provider.Problem{Reason: v1alpha1.ReasonConflict, Message: msg})
			}
		}
		obs.targets = append(obs.targets, o)
	}
	for _, ref := range policy.Spec.AutoscalerRefs {
		o, err := r.HPA.Observe(ctx, policy, ref, k.HoldAutoscalers)
		if err != nil {
			return obs, err
		}
		if !o.Found {
			o.Problems = append(o.Problems, provider.Problem{Reason: v1alpha1.ReasonAutoscalerNotFound,
				Message: fmt.Sprintf("HorizontalPodAutoscaler %s not found in namespace %s", ref.Name, policy.Namespace)})
		}
		obs.autoscalers = append(obs.autoscalers, o)
	}
	return obs, r.observeLeftovers(ctx, policy, &obs)
}

// unsupportedSteps lists what an observed target cannot take, for the standing allowlist and
// every ramp step, so a runbook's limits are known before the incident.
func (r *TrafficPolicyReconciler) unsupportedSteps(policy *v1alpha1.TrafficPolicy, o *provider.Observation, steps []core.NamedKnobs) []string {
	var out []string
	for _, s := range steps {
		if msg := r.Ingress.Unsupported(policy, o, s.Knobs); msg != "" {
			out = append(out, s.Name+": "+msg)
		}
	}
	return out
}

// observeLeftovers reads the targets and autoscalers the policy changed that its spec no longer
// names: those its status lists with a restore record or companion, and those carrying its
// record or a canary of its own.
func (r *TrafficPolicyReconciler) observeLeftovers(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *observation) error {
	refs, err := r.Ingress.Recorded(ctx, policy)
	if err != nil {
		return err
	}
	for _, t := range policy.Status.Targets {
		if t.RestoreRecord != "" || t.Companion != "" {
			refs = append(refs, v1alpha1.TargetRef{Kind: t.Kind, Name: t.Name})
		}
	}
	for _, ref := range leftover(refs, policy.Spec.TargetRefs, func(t v1alpha1.TargetRef) string { return t.Name }) {
		o, err := r.Ingress.Observe(ctx, policy, ref, knobs.Knobs{})
		if err != nil {
			return err
		}
		obs.leftoverTargets = append(obs.leftoverTargets, o)
	}

	names, err := r.HPA.Recorded(ctx, policy)
	if err != nil {
		return err
	}
	for _, a := range policy.Status.Autoscalers {
		if a.RestoreRecord != "" {
			names = append(names, a.Name)
		}
	}
	var refsInSpec []string
	for _, a := range policy.Spec.AutoscalerRefs {
		refsInSpec = append(refsInSpec, a.Name)
	}
	for _, name := range leftover(names, refsInSpec, func(n string) string { return n }) {
		o, err := r.HPA.Observe(ctx, policy, v1alpha1.AutoscalerRef{Name: name}, false)
		if err != nil {
			return err
		}
		obs.leftoverAutoscalers = append(obs.leftoverAutoscalers, o)
	}
	return nil
}

// leftover keeps the items found whose name the spec does not have, once each.
func leftover[T any](found, spec []T, name func(T) string) []T {
	seen := map[string]bool{}
	for _, t := range spec {
		seen[name(t)] = true
	}
	var out []T
	for _, t := range found {
		if !seen[name(t)] {
			seen[name(t)] = true
			out = append(out, t)
		}
	}
	return out
}

// targetKnobs decides what one target gets under the knobs in force: whether anything is written
// to it, and which knobs. Another policy's record or a companion that is not ours keeps it
// untouched; a target that is gone only loses its canary; a target that cannot take an
// allowlist is given none (full traffic) rather than a different one, and says so.
func targetKnobs(o *provider.Observation, k knobs.Knobs) (write bool, _ knobs.Knobs) {
	switch {
	case provider.HasReason(o.Problems, v1alpha1.ReasonConflict):
		return false, knobs.Knobs{}
	case !o.Found:
		return true, knobs.Knobs{}
	case provider.HasReason(o.Problems, v1alpha1.ReasonUnsupported):
		if k.Shed {
			return false, knobs.Knobs{}
		}
		return true, knobs.Knobs{}
	}
	return true, k
}

// autoscalerWritable reports whether an autoscaler can be held or released: it exists, and
// neither another policy, another controller nor an unreadable record keeps it from Floodgate.
func autoscalerWritable(o *autoscaler.Observation) bool {
	return o.Found && !blocked(o.Problems)
}

// apply writes the knobs to every observed target and autoscaler that can take them, and puts
// back the leftovers. A problem on one object never keeps the others from their knobs: it is
// reported on that object (outcome.Problems and its status entry). Write failures are collected
// and returned together, after every object was tried.
func (r *TrafficPolicyReconciler) apply(ctx context.Context, policy *v1alpha1.TrafficPolicy, k knobs.Knobs, obs observation, outcome *core.Outcome) error {
	var errs []error
	fail := func(problems *[]provider.Problem, err error) {
		var notOurs *owned.NotOursError
		switch {
		case errors.As(err, &notOurs):
			// Observe reports such an object before any write; one that appeared since is reported
			// the same way, and the pass is retried so the next observe sees it.
			*problems = append(*problems, provider.Problem{Reason: v1alpha1.ReasonConflict, Message: err.Error()})
		case !staleRead(err):
			*problems = append(*problems, provider.Problem{Reason: v1alpha1.ReasonApplyFailed, Message: err.Error()})
		}
		errs = append(errs, err)
	}

	traffic := k.Traffic()
	// Each target's shed Service is in place before its canary routes to it, and goes after.
	var shedFor []string
	targets := make([]v1alpha1.TargetStatus, 0, len(obs.targets))
	for _, o := range obs.targets {
		write, tk := targetKnobs(o, traffic)
		if !write {
			targets = append(targets, withProblems(previousTarget(policy, o), o.Problems))
			continue
		}
		if tk.Sheds() && o.Found {
			ready, err := r.Shed.EnsureCompanion(ctx, r.Client, policy, o.Ref.Name)
			if err != nil {
				fail(&o.Problems, fmt.Errorf("shed Service for %s %s: %w", o.Ref.Kind, o.Ref.Name, err))
				targets = append(targets, withProblems(previousTarget(policy, o), o.Problems))
				continue
			}
			shedFor = append(shedFor, o.Ref.Name)
			outcome.ShedEndpoints = ready
		}
		res, err := r.Ingress.Apply(ctx, policy, o, tk, recordCopy(policy.Status.Targets, o.Ref.Name))
		if err != nil {
			fail(&o.Problems, err)
			if tk.Sheds() && o.Found {
				// The shed Service may already be in use by a canary written before.
				shedFor = append(shedFor, o.Ref.Name)
			}
			targets = append(targets, withProblems(previousTarget(policy, o), o.Problems))
			continue
		}
		outcome.KeptOthers = append(outcome.KeptOthers, prefixed("Ingress "+o.Ref.Name, res.KeptOthers)...)
		targets = append(targets, withProblems(res.Status, o.Problems))
	}

	autoscalers := make([]v1alpha1.AutoscalerStatus, 0, len(obs.autoscalers))
	for _, o := range obs.autoscalers {
		if !autoscalerWritable(o) {
			autoscalers = append(autoscalers, withAutoscalerProblems(previousAutoscaler(policy, o), o.Problems))
			continue
		}
		st, kept, err := r.HPA.Apply(ctx, policy, o, holdLevel(policy.Status.Autoscalers, o.Name, k), autoscalerRecordCopy(policy.Status.Autoscalers, o.Name))
		if err != nil {
			fail(&o.Problems, err)
			autoscalers = append(autoscalers, withAutoscalerProblems(previousAutoscaler(policy, o), o.Problems))
			continue
		}
		outcome.KeptOthers = append(outcome.KeptOthers, prefixed("HorizontalPodAutoscaler "+o.Name, kept)...)
		autoscalers = append(autoscalers, st)
	}

	leftTargets, leftAutoscalers := r.putBackLeftovers(ctx, policy, obs, outcome, fail)
	// Shed Services go once no canary routes to them.
	if err := shed.RemoveCompanions(ctx, r.Client, policy, shedFor); err != nil {
		errs = append(errs, err)
	}
	policy.Status.Targets, policy.Status.Autoscalers = append(targets, leftTargets...), append(autoscalers, leftAutoscalers...)
	outcome.Problems = append(outcome.Problems, obs.problems()...)
	outcome.Leftovers = append(outcome.Leftovers, obs.leftoverProblems()...)
	return errors.Join(errs...)
}

// putBackLeftovers restores the targets and autoscalers the spec no longer names. One that is
// put back leaves status; one that cannot be (a corrupt record, a failed write) stays there with
// its record copy.
func (r *TrafficPolicyReconciler) putBackLeftovers(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs observation, outcome *core.Outcome, fail func(*[]provider.Problem, error)) ([]v1alpha1.TargetStatus, []v1alpha1.AutoscalerStatus) {
	var targets []v1alpha1.TargetStatus
	for _, o := range obs.leftoverTargets {
		if write, _ := targetKnobs(o, knobs.Knobs{}); !write {
			continue // another policy's, not ours to put back
		}
		res, err := r.Ingress.Apply(ctx, policy, o, knobs.Knobs{}, recordCopy(policy.Status.Targets, o.Ref.Name))
		if err != nil {
			fail(&o.Problems, err)
		}
		if err != nil || len(corrupt(o.Problems)) > 0 {
			targets = append(targets, previousTarget(policy, o))
			continue
		}
		outcome.KeptOthers = append(outcome.KeptOthers, prefixed("Ingress "+o.Ref.Name, res.KeptOthers)...)
	}
	var autoscalers []v1alpha1.AutoscalerStatus
	for _, o := range obs.leftoverAutoscalers {
		if len(corrupt(o.Problems)) > 0 {
			autoscalers = append(autoscalers, previousAutoscaler(policy, o))
			continue
		}
		if !autoscalerWritable(o) {
			continue
		}
		_, kept, err := r.HPA.Apply(ctx, policy, o, autoscaler.Level{}, autoscalerRecordCopy(policy.Status.Autoscalers, o.Name))
		if err != nil {
			fail(&o.Problems, err)
			autoscalers = append(autoscalers, previousAutoscaler(policy, o))
			continue
		}
		outcome.KeptOthers = append(outcome.KeptOthers, prefixed("HorizontalPodAutoscaler "+o.Name, kept)...)
	}
	return targets, autoscalers
}

// noteHeld records, for a ramp that holds, which objects exist and what keeps each from the
// step, keeping what was applied before; nothing was written to them.
func noteHeld(policy *v1alpha1.TrafficPolicy, obs observation) {
	targets := make([]v1alpha1.TargetStatus, 0, len(obs.targets)+len(obs.leftoverTargets))
	for _, o := range obs.targets {
		targets = append(targets, withProblems(previousTarget(policy, o), o.Problems))
	}
	for _, o := range obs.leftoverTargets {
		targets = append(targets, previousTarget(policy, o))
	}
	autoscalers := make([]v1alpha1.AutoscalerStatus, 0, len(obs.autoscalers))
	for _, o := range obs.autoscalers {
		autoscalers = append(autoscalers, withAutoscalerProblems(previousAutoscaler(policy, o), o.Problems))
	}
	for _, o := range obs.leftoverAutoscalers {
		autoscalers = append(autoscalers, previousAutoscaler(policy, o))
	}
	policy.Status.Targets, policy.Status.Autoscalers = targets, autoscalers
}

// previousTarget is a target's observed status with what status said was applied to it.
func previousTarget(policy *v1alpha1.TrafficPolicy, o *provider.Observation) v1alpha1.TargetStatus {
	st := o.Status
	for _, prev := range policy.Status.Targets {
		if prev.Name == o.Ref.Name {
			st.Applied, st.Companion, st.RestoreRecord = prev.Applied, prev.Companion, prev.RestoreRecord
		}
	}
	return st
}

// previousAutoscaler is an autoscaler's status as status last said, with whether it exists now.
func previousAutoscaler(policy *v1alpha1.TrafficPolicy, o *autoscaler.Observation) v1alpha1.AutoscalerStatus {
	st := v1alpha1.AutoscalerStatus{Name: o.Name}
	if i := slices.IndexFunc(policy.Status.Autoscalers, func(a v1alpha1.AutoscalerStatus) bool { return a.Name == o.Name }); i >= 0 {
		st = policy.Status.Autoscalers[i]
	}
	st.Found, st.Reason, st.Message = o.Found, "", ""
	return st
}

// withProblems puts an object's problems on its status entry: the first reason, every message.
func withProblems(st v1alpha1.TargetStatus, problems []provider.Problem) v1alpha1.TargetStatus {
	st.Reason, st.Message = summary(problems)
	return st
}

func withAutoscalerProblems(st v1alpha1.AutoscalerStatus, problems []provider.Problem) v1alpha1.AutoscalerStatus {
	st.Reason, st.Message = summary(problems)
	return st
}

func summary(problems []provider.Problem) (reason, message string) {
	if len(problems) == 0 {
		return "", ""
	}
	msgs := make([]string, 0, len(problems))
	for _, p := range problems {
		msgs = append(msgs, p.Message)
	}
	return problems[0].Reason, strings.Join(msgs, "; ")
}

// unsupportedSummary lists, for the StepUnsupported condition, what each target cannot take.
func unsupportedSummary(targets []v1alpha1.TargetStatus) []string {
	var out []string
	for _, t := range targets {
		for _, u := range t.Unsupported {
			step, msg, _ := strings.Cut(u, ": ")
			out = append(out, fmt.Sprintf("%s on %s %s: %s", step, t.Kind, t.Name, msg))
		}
	}
	return out
}
