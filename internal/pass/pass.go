// Package pass is one pass of a policy over the objects it edits: observe each (through its
// kind's provider), decide what each gets under the knobs in force, render and write it (or,
// for a preview, render and show it). This is the one place that iterates a policy's targets
// and autoscalers, for observe, apply, preview and put-back alike.
package pass

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/shed"
)

// object is one object a pass deals with: a target or an autoscaler the spec names, or one the
// policy changed that the spec no longer names (a leftover, put back whatever the knobs).
type object struct {
	ref      provider.Ref
	role     provider.Role
	provider provider.Provider // nil when no provider can serve its kind (problems say why)
	obs      *provider.Observation
	leftover bool
}

// Pass does passes over a policy's objects.
type Pass struct {
	// Client reads and writes (the manager's cached client; a direct one for previews).
	Client client.Client
	// Providers edit each kind of object a policy names.
	Providers *provider.Registry
	// Shed is where the shed pods are, mirrored into each policy's namespace.
	Shed shed.Backend
}

// Observation is what was read about every object before any write.
type Observation struct {
	objects []*object
}

func (o Observation) of(role provider.Role, leftover bool) []*object {
	var out []*object
	for _, obj := range o.objects {
		if obj.role == role && obj.leftover == leftover {
			out = append(out, obj)
		}
	}
	return out
}

// Targets are the observations of the targets the spec names.
func (o Observation) Targets() []*provider.Observation {
	var out []*provider.Observation
	for _, obj := range o.of(provider.Target, false) {
		out = append(out, obj.obs)
	}
	return out
}

// Problems are every problem of the objects the spec names.
func (o Observation) Problems() []provider.Problem {
	var out []provider.Problem
	for _, obj := range o.objects {
		if !obj.leftover {
			out = append(out, obj.obs.Problems...)
		}
	}
	return out
}

// LeftoverProblems are the problems putting back objects the spec no longer names: only a record
// that cannot be read (another policy's record means the object is not this policy's).
func (o Observation) LeftoverProblems() []provider.Problem {
	var out []provider.Problem
	for _, obj := range o.objects {
		if obj.leftover {
			out = append(out, Corrupt(obj.obs.Problems)...)
		}
	}
	return out
}

// RampBlockers are the problems that keep a ramp step from being applied: nothing of a step is
// half applied, so the ramp holds at its previous step while any target that exists cannot take
// the step (conflict, unsupported setting, unreadable record) or any autoscaler's hold cannot be
// applied (missing, conflict, another controller's). A target that does not exist carries no
// traffic: it takes the step in force when it appears.
func (o Observation) RampBlockers() []provider.Problem {
	var out []provider.Problem
	for _, obj := range o.objects {
		if !obj.leftover && (obj.role == provider.Autoscaler || obj.obs.Found) {
			out = append(out, obj.obs.Problems...)
		}
	}
	return out
}

// IsRampStep reports whether a phase puts a ramp step in force (the only lever that holds when it
// cannot be applied everywhere; ShedAll, Normal, releases and restores are always applied).
func IsRampStep(phase v1alpha1.Phase) bool {
	return phase == v1alpha1.PhaseRamping || phase == v1alpha1.PhasePaused
}

// desired is what the knobs in force ask of one object.
func desired(policy *v1alpha1.TrafficPolicy, obj *object, k knobs.Knobs) provider.Desired {
	if obj.leftover {
		return provider.Desired{}
	}
	if obj.role == provider.Target {
		return provider.Desired{Knobs: k.Traffic()}
	}
	d := provider.Desired{Knobs: knobs.Knobs{HoldAutoscalers: k.HoldAutoscalers, ReleaseStage: k.ReleaseStage}}
	if a := autoscalerStatus(policy, obj.ref); a != nil && a.Held {
		d.Peak = a.HeldMinReplicas
	}
	return d
}

// Observe reads every object the policy names or changed; it writes nothing.
func (r *Pass) Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, k knobs.Knobs) (Observation, error) {
	var obs Observation
	for _, ref := range TargetRefs(policy.Spec) {
		obs.objects = append(obs.objects, &object{ref: ref, role: provider.Target})
	}
	for _, ref := range AutoscalerRefs(policy.Spec) {
		obs.objects = append(obs.objects, &object{ref: ref, role: provider.Autoscaler})
	}
	leftovers, err := r.leftovers(ctx, policy)
	if err != nil {
		return obs, err
	}
	obs.objects = append(obs.objects, leftovers...)
	steps := core.StepKnobs(policy.Spec)
	for _, obj := range obs.objects {
		if err := r.observeOne(ctx, policy, obj, desired(policy, obj, k), steps); err != nil {
			return obs, err
		}
	}
	return obs, nil
}

// observeOne reads one object through its kind's provider.
func (r *Pass) observeOne(ctx context.Context, policy *v1alpha1.TrafficPolicy, obj *object, d provider.Desired, steps []core.NamedKnobs) error {
	p, err := r.Providers.For(obj.ref)
	if err != nil {
		obj.obs = &provider.Observation{Ref: obj.ref, Problems: []provider.Problem{provider.ProblemOf(err)}}
		return nil
	}
	obj.provider = p
	if obj.obs, err = p.Observe(ctx, policy, obj.ref, d); err != nil {
		return err
	}
	switch {
	case !obj.obs.Found && !obj.leftover:
		reason := v1alpha1.ReasonTargetNotFound
		if obj.role == provider.Autoscaler {
			reason = v1alpha1.ReasonAutoscalerNotFound
		}
		obj.obs.Problems = append(obj.obs.Problems, provider.Problem{Reason: reason,
			Message: fmt.Sprintf("%s not found in namespace %s", obj.ref, policy.Namespace)})
	case obj.obs.Found && obj.role == provider.Target && !obj.leftover:
		obj.obs.Status.Unsupported = unsupportedSteps(policy, obj, steps)
		if d.Knobs.Sheds() {
			notOurs, err := r.Shed.CompanionsNotOurs(ctx, r.Client, policy, obj.ref.Name)
			if err != nil {
				return err
			}
			for _, err := range notOurs {
				obj.obs.Problems = append(obj.obs.Problems, provider.NewProblem("shed "+err.Error(), err))
			}
		}
	}
	return nil
}

// unsupportedSteps lists what an observed target cannot take, for the standing allowlist and
// every ramp step, so a runbook's limits are known before the incident.
func unsupportedSteps(policy *v1alpha1.TrafficPolicy, obj *object, steps []core.NamedKnobs) []string {
	var out []string
	for _, s := range steps {
		if msg := obj.provider.Unsupported(policy, obj.obs, provider.Desired{Knobs: s.Knobs}); msg != "" {
			out = append(out, s.Name+": "+msg)
		}
	}
	return out
}

// leftovers are the objects the policy changed that its spec no longer names: those its status
// lists with a restore record or companion, and those carrying its record or a companion of its
// own (found by each provider).
func (r *Pass) leftovers(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]*object, error) {
	inSpec := map[string]bool{}
	for _, ref := range append(TargetRefs(policy.Spec), AutoscalerRefs(policy.Spec)...) {
		inSpec[ref.Key()] = true
	}
	var out []*object
	add := func(ref provider.Ref, role provider.Role) {
		if !inSpec[ref.Key()] {
			inSpec[ref.Key()] = true
			out = append(out, &object{ref: ref, role: role, leftover: true})
		}
	}
	for _, role := range []provider.Role{provider.Target, provider.Autoscaler} {
		for _, p := range r.Providers.Available(role) {
			refs, err := p.Recorded(ctx, policy)
			if err != nil {
				return nil, err
			}
			for _, ref := range refs {
				add(ref, role)
			}
		}
	}
	for _, t := range policy.Status.Targets {
		if t.RestoreRecord != "" || t.Companion != "" {
			add(targetRef(t.Group, string(t.Kind), t.Name), provider.Target)
		}
	}
	for _, a := range policy.Status.Autoscalers {
		if a.RestoreRecord != "" {
			add(autoscalerRef(a.APIGroup, string(a.Kind), a.Name), provider.Autoscaler)
		}
	}
	return out, nil
}

// decide says what one object gets under the knobs in force: whether anything is written to it,
// and what. Another policy's record or a companion that is not ours keeps a target untouched; a
// target that is gone only loses its companions; a target that cannot take an allowlist is given
// none (full traffic) rather than a different one; an autoscaler with any problem is left alone.
func decide(obj *object, d provider.Desired) (write bool, _ provider.Desired) {
	o := obj.obs
	switch {
	case obj.provider == nil:
		return false, d
	case slices.ContainsFunc(o.Problems, provider.InTheWay):
		return false, d
	case obj.role == provider.Autoscaler:
		return o.Found && len(o.Problems) == 0 || obj.leftover && o.Found && len(Corrupt(o.Problems)) == 0, d
	case !o.Found:
		return true, provider.Desired{}
	case slices.ContainsFunc(o.Problems, provider.Unsupported):
		return !d.Knobs.Shed, provider.Desired{}
	}
	return true, d
}

// Apply writes the knobs to every observed object that can take them, and puts back the
// leftovers. A problem on one object never keeps the others from their knobs: it is reported on
// that object (outcome.Problems and its status entry). Write failures are collected and
// returned together, after every object was tried.
func (r *Pass) Apply(ctx context.Context, policy *v1alpha1.TrafficPolicy, k knobs.Knobs, obs Observation, outcome *core.Outcome) error {
	var errs []error
	var shedFor []string
	entries := statusEntries{}
	for _, obj := range obs.objects {
		write, d := decide(obj, desired(policy, obj, k))
		if !write {
			entries.unwritten(policy, obj, false)
			continue
		}
		ch, err := obj.provider.Render(policy, obj.obs, d, recordCopy(policy, obj))
		if err == nil && obj.role == provider.Target && d.Knobs.Sheds() && obj.obs.Found {
			// Each target's shed Service is in place before its canary routes to it, and goes after.
			shedFor = append(shedFor, obj.ref.Name)
			var ready int
			if ready, err = r.Shed.EnsureCompanion(ctx, r.Client, policy, obj.ref.Name); err == nil {
				outcome.ShedEndpoints = ready
			}
		}
		if err == nil {
			err = provider.Write(ctx, r.Client, policy, ch)
		}
		if err != nil {
			r.fail(obj, err, &errs)
			entries.unwritten(policy, obj, false)
			continue
		}
		outcome.KeptOthers = append(outcome.KeptOthers, prefixed(obj.ref.String(), ch.KeptOthers)...)
		entries.written(obj, ch.Status)
	}
	// Shed Services go once no canary routes to them.
	if err := shed.RemoveCompanions(ctx, r.Client, policy, shedFor); err != nil {
		errs = append(errs, err)
	}
	policy.Status.Targets, policy.Status.Autoscalers = entries.targets, entries.autoscalers
	outcome.Problems = append(outcome.Problems, obs.Problems()...)
	outcome.Leftovers = append(outcome.Leftovers, obs.LeftoverProblems()...)
	return errors.Join(errs...)
}

// fail records a write that failed on one object: as its problem, and as an error to retry (a
// stale read is retried without a word).
func (r *Pass) fail(obj *object, err error, errs *[]error) {
	// An object in the way (one that appeared since observe) is a Conflict; anything else but a
	// stale read is ApplyFailed. Either way the pass is retried.
	if !StaleRead(err) {
		obj.obs.Problems = append(obj.obs.Problems, provider.ProblemOf(err))
	}
	*errs = append(*errs, err)
}

// NoteHeld records, for a ramp that holds, which objects exist and what keeps each from the
// step, keeping what was applied before; nothing was written to them.
func NoteHeld(policy *v1alpha1.TrafficPolicy, obs Observation) {
	entries := statusEntries{}
	for _, obj := range obs.objects {
		entries.unwritten(policy, obj, true)
	}
	policy.Status.Targets, policy.Status.Autoscalers = entries.targets, entries.autoscalers
}

// statusEntries build status.targets and status.autoscalers from one pass's objects.
type statusEntries struct {
	targets     []v1alpha1.TargetStatus
	autoscalers []v1alpha1.AutoscalerStatus
}

// written files the status of an object the pass wrote. A leftover that was put back leaves
// status.
func (e *statusEntries) written(obj *object, st provider.Status) {
	if obj.leftover {
		return
	}
	reason, message := summary(obj.obs.Problems)
	if obj.role == provider.Target {
		t := targetStatusOf(obj, st)
		t.Reason, t.Message = reason, message
		e.targets = append(e.targets, t)
		return
	}
	a := autoscalerStatusOf(obj, st)
	a.Reason, a.Message = reason, message
	e.autoscalers = append(e.autoscalers, a)
}

// unwritten files the status of an object the pass did not write: what status said before, with
// the object's problems. A leftover stays only while it cannot be put back (its record cannot be
// read, or the write failed), or while held is true (a holding ramp writes nothing at all).
func (e *statusEntries) unwritten(policy *v1alpha1.TrafficPolicy, obj *object, held bool) {
	reason, message := summary(obj.obs.Problems)
	if obj.leftover {
		failed := slices.ContainsFunc(obj.obs.Problems, func(p provider.Problem) bool { return p.Reason == v1alpha1.ReasonApplyFailed })
		if !held && len(Corrupt(obj.obs.Problems)) == 0 && !failed {
			return
		}
		reason, message = "", ""
	}
	if obj.role == provider.Target {
		t := previousTarget(policy, obj)
		t.Reason, t.Message = reason, message
		e.targets = append(e.targets, t)
		return
	}
	a := previousAutoscaler(policy, obj)
	a.Reason, a.Message = reason, message
	e.autoscalers = append(e.autoscalers, a)
}

func targetStatusOf(obj *object, s provider.Status) v1alpha1.TargetStatus {
	return v1alpha1.TargetStatus{Group: obj.ref.Group, Kind: v1alpha1.TargetKind(obj.ref.Kind), Name: obj.ref.Name,
		Found: obj.obs.Found, Applied: s.Applied, Capabilities: s.Capabilities, Companion: s.Companion,
		SharedUpstreamIngresses: s.SharedUpstreamIngresses, Warnings: s.Warnings, RestoreRecord: s.RestoreRecord,
		Unsupported: s.Unsupported}
}

func autoscalerStatusOf(obj *object, s provider.Status) v1alpha1.AutoscalerStatus {
	return v1alpha1.AutoscalerStatus{APIGroup: obj.ref.Group, Kind: v1alpha1.AutoscalerKind(obj.ref.Kind), Name: obj.ref.Name,
		Found: obj.obs.Found, Held: s.Held, HeldMinReplicas: s.HeldMinReplicas, MinReplicas: s.MinReplicas,
		RestoreRecord: s.RestoreRecord, Warnings: s.Warnings}
}

// previousTarget is a target's observed status with what status said was applied to it.
func previousTarget(policy *v1alpha1.TrafficPolicy, obj *object) v1alpha1.TargetStatus {
	st := targetStatusOf(obj, obj.obs.Status)
	if prev := targetStatus(policy, obj.ref); prev != nil {
		st.Applied, st.Companion, st.RestoreRecord = prev.Applied, prev.Companion, prev.RestoreRecord
	}
	return st
}

// previousAutoscaler is an autoscaler's status as status last said, with whether it exists now.
func previousAutoscaler(policy *v1alpha1.TrafficPolicy, obj *object) v1alpha1.AutoscalerStatus {
	st := autoscalerStatusOf(obj, obj.obs.Status)
	if prev := autoscalerStatus(policy, obj.ref); prev != nil {
		st = *prev.DeepCopy()
		st.APIGroup, st.Kind = obj.ref.Group, v1alpha1.AutoscalerKind(obj.ref.Kind)
	}
	st.Found = obj.obs.Found
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

// UnsupportedSummary lists, for the StepUnsupported condition, what each target cannot take.
func UnsupportedSummary(targets []v1alpha1.TargetStatus) []string {
	var out []string
	for _, t := range targets {
		for _, u := range t.Unsupported {
			step, msg, _ := strings.Cut(u, ": ")
			out = append(out, fmt.Sprintf("%s on %s %s: %s", step, t.Kind, t.Name, msg))
		}
	}
	return out
}

// References, defaulted as the CRD defaults them (a policy built in Go may leave them empty).

func targetRef(group, kind, name string) provider.Ref {
	if kind == "" {
		kind = string(v1alpha1.TargetKindIngress)
	}
	if group == "" && kind == string(v1alpha1.TargetKindIngress) {
		group = v1alpha1.GroupNetworking
	}
	return provider.Ref{Group: group, Kind: kind, Name: name}
}

func autoscalerRef(group, kind, name string) provider.Ref {
	if kind == "" {
		kind = string(v1alpha1.AutoscalerKindHPA)
	}
	if group == "" {
		group = v1alpha1.GroupAutoscaling
		if kind == string(v1alpha1.AutoscalerKindScaledObject) {
			group = v1alpha1.GroupKEDA
		}
	}
	return provider.Ref{Group: group, Kind: kind, Name: name}
}

// TargetRefs are the targets a spec names, with their kinds defaulted.
func TargetRefs(spec v1alpha1.TrafficPolicySpec) []provider.Ref {
	out := make([]provider.Ref, 0, len(spec.TargetRefs))
	for _, t := range spec.TargetRefs {
		out = append(out, targetRef(t.Group, string(t.Kind), t.Name))
	}
	return out
}

// AutoscalerRefs are the autoscalers a spec names, with their kinds defaulted.
func AutoscalerRefs(spec v1alpha1.TrafficPolicySpec) []provider.Ref {
	out := make([]provider.Ref, 0, len(spec.AutoscalerRefs))
	for _, a := range spec.AutoscalerRefs {
		out = append(out, autoscalerRef(a.APIGroup, string(a.Kind), a.Name))
	}
	return out
}

// targetStatus is the status entry of a target (nil: none).
func targetStatus(policy *v1alpha1.TrafficPolicy, ref provider.Ref) *v1alpha1.TargetStatus {
	i := slices.IndexFunc(policy.Status.Targets, func(t v1alpha1.TargetStatus) bool {
		return targetRef(t.Group, string(t.Kind), t.Name) == ref
	})
	if i < 0 {
		return nil
	}
	return &policy.Status.Targets[i]
}

// autoscalerStatus is the status entry of an autoscaler (nil: none).
func autoscalerStatus(policy *v1alpha1.TrafficPolicy, ref provider.Ref) *v1alpha1.AutoscalerStatus {
	i := slices.IndexFunc(policy.Status.Autoscalers, func(a v1alpha1.AutoscalerStatus) bool {
		return autoscalerRef(a.APIGroup, string(a.Kind), a.Name) == ref
	})
	if i < 0 {
		return nil
	}
	return &policy.Status.Autoscalers[i]
}

// recordCopy is the copy of an object's restore record kept in status.
func recordCopy(policy *v1alpha1.TrafficPolicy, obj *object) string {
	if obj.role == provider.Target {
		if t := targetStatus(policy, obj.ref); t != nil {
			return t.RestoreRecord
		}
		return ""
	}
	if a := autoscalerStatus(policy, obj.ref); a != nil {
		return a.RestoreRecord
	}
	return ""
}

// StaleRead reports whether a write failed only because the pass read an object from the cache
// before the cache had caught up with the API server (often with this controller's own previous
// write): a resourceVersion conflict, or creating a companion that already exists. Nothing is
// wrong, so no condition says so; the pass is retried on a fresh read.
func StaleRead(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// Corrupt keeps the problems that say a restore record cannot be read.
func Corrupt(problems []provider.Problem) []provider.Problem {
	var out []provider.Problem
	for _, p := range problems {
		if provider.Unreadable(p) {
			out = append(out, p)
		}
	}
	return out
}

// prefixed names fields as an object's: "Ingress api annotations.x".
func prefixed(prefix string, fields []string) []string {
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		out = append(out, prefix+" "+strings.TrimPrefix(f, "metadata."))
	}
	return out
}
