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
	// resolved says which data planes serve the object and why its provider was chosen.
	resolved provider.Resolved
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
	// problems are the policy's own, on no object (a targetSelector that cannot be read).
	problems []provider.Problem
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

// TargetRoutes are the host/path routes the targets the spec names carry, each told by its
// kind's provider (none of a target that carries no traffic, as its kind's carrier says).
func (o Observation) TargetRoutes(carriers shed.Carriers) []shed.Route {
	var out []shed.Route
	for _, obj := range o.of(provider.Target, false) {
		if routed, ok := obj.provider.(provider.Routed); ok && obj.obs.Found {
			out = append(out, routed.Routes(obj.obs, carriers)...)
		}
	}
	return out
}

// TargetNamedRoutes are, by target ("Ingress/web", as status names it), the routes each target
// the spec names names, whether or not a data plane carries them (what probes are sent to).
func (o Observation) TargetNamedRoutes() map[string][]shed.Route {
	out := map[string][]shed.Route{}
	for _, obj := range o.of(provider.Target, false) {
		if routed, ok := obj.provider.(provider.Routed); ok && obj.obs.Found {
			named := shed.Carriers{routed.GroupKind(): routed.NamedRoutes}
			out[obj.ref.Kind+"/"+obj.ref.Name] = routed.Routes(obj.obs, named)
		}
	}
	return out
}

// Problems are every problem of the objects the spec names, and the policy's own.
func (o Observation) Problems() []provider.Problem {
	out := append([]provider.Problem(nil), o.problems...)
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
	out := append([]provider.Problem(nil), o.problems...)
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
	targets, selectorProblem, err := r.targets(ctx, policy)
	if err != nil {
		return obs, err
	}
	if selectorProblem != nil {
		obs.problems = append(obs.problems, *selectorProblem)
	}
	for _, ref := range targets {
		obs.objects = append(obs.objects, &object{ref: ref, role: provider.Target})
	}
	for _, ref := range AutoscalerRefs(policy.Spec) {
		obs.objects = append(obs.objects, &object{ref: ref, role: provider.Autoscaler})
	}
	leftovers, err := r.leftovers(ctx, policy, targets)
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
	return obs, r.observeShedCompanions(ctx, policy, obs.objects, k)
}

// observeOne reads one object through the provider of its kind and data plane.
func (r *Pass) observeOne(ctx context.Context, policy *v1alpha1.TrafficPolicy, obj *object, d provider.Desired, steps []core.NamedKnobs) error {
	res, err := r.Providers.Resolve(ctx, policy, obj.ref)
	if err != nil {
		obj.obs = &provider.Observation{Ref: obj.ref, Problems: []provider.Problem{provider.ProblemOf(err)}}
		return nil
	}
	obj.provider, obj.resolved = res.Provider, res
	if obj.obs, err = res.Provider.Observe(ctx, policy, obj.ref, d); err != nil {
		return err
	}
	switch {
	case !obj.obs.Found && !obj.leftover:
		notFound := provider.ErrTargetNotFound
		if obj.role == provider.Autoscaler {
			notFound = provider.ErrAutoscalerNotFound
		}
		obj.obs.Problems = append(obj.obs.Problems, provider.NewProblem(
			fmt.Sprintf("%s not found in namespace %s", obj.ref, policy.Namespace), notFound))
	case obj.obs.Found && obj.role == provider.Target && !obj.leftover:
		obj.obs.Status.Target.Unsupported = unsupportedSteps(policy, obj, steps)
	}
	return nil
}

// observeShedCompanions reports, on every target the knobs shed through the shed backend, a shed Service or EndpointSlice
// name held by an object the policy does not control: no canary may route there.
func (r *Pass) observeShedCompanions(ctx context.Context, policy *v1alpha1.TrafficPolicy, objects []*object, k knobs.Knobs) error {
	var shedding []*object
	for _, obj := range objects {
		if obj.role == provider.Target && !obj.leftover && obj.obs.Found && provider.ShedsThroughBackend(obj.provider, policy, obj.obs, desired(policy, obj, k)) {
			shedding = append(shedding, obj)
		}
	}
	if len(shedding) == 0 {
		return nil
	}
	notOurs, err := r.Shed.CompanionsNotOurs(ctx, r.Client, policy)
	if err != nil {
		return err
	}
	for _, obj := range shedding {
		for _, err := range notOurs {
			obj.obs.Problems = append(obj.obs.Problems, provider.NewProblem("shed "+err.Error(), err))
		}
	}
	return nil
}

// ErrSelector is wrapped by the problem of a targetSelector that cannot be read.
var ErrSelector = errors.New("the targetSelector cannot be read")

// targets are the targets the spec names and those its targetSelector selects, once each. A
// selector that cannot be read (one the CRD's rules let through) selects nothing and is the
// policy's problem: the named targets still take every lever, and what the selector's targets
// carry of the policy is still put back (they carry its record: leftovers).
func (r *Pass) targets(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]provider.Ref, *provider.Problem, error) {
	refs := TargetRefs(policy.Spec)
	sel := policy.Spec.TargetSelector
	if sel == nil {
		return refs, nil, nil
	}
	selector, err := sel.LabelSelector()
	if err != nil {
		p := provider.NewProblem(fmt.Sprintf("targetSelector selects nothing until it is fixed: %v; the named targets take the lever", err),
			fmt.Errorf("%w: %w: %w", provider.ErrUnsupported, ErrSelector, err))
		return refs, &p, nil
	}
	p, err := r.Providers.For(targetRef(sel.Group, string(sel.Kind), ""))
	if err != nil {
		return refs, nil, nil // the named targets carry on; each selected kind's problem shows on them
	}
	selecting, ok := p.(provider.Selecting)
	if !ok {
		return refs, nil, nil
	}
	selected, err := selecting.Select(ctx, policy, selector)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, ref := range refs {
		seen[ref.Key()] = true
	}
	for _, ref := range selected {
		if !seen[ref.Key()] {
			seen[ref.Key()] = true
			refs = append(refs, ref)
		}
	}
	return refs, nil, nil
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
func (r *Pass) leftovers(ctx context.Context, policy *v1alpha1.TrafficPolicy, targets []provider.Ref) ([]*object, error) {
	inSpec := map[string]bool{}
	for _, ref := range append(slices.Clone(targets), AutoscalerRefs(policy.Spec)...) {
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
