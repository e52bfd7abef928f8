// Package provider is the small interface every traffic provider implements: observe a target
// (reads only, so the controller knows every object's problems before it writes), say what knobs
// a target cannot take (so a runbook's limits are known up front), then apply knobs to it (zero
// knobs put everything back as it was).
package provider

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/restore"
)

// Problem is something that keeps one object from taking the knobs. It is reported on that
// object; whether the rest proceeds is the controller's decision (ShedAll and Normal always do).
type Problem struct {
	// Reason is a condition reason (v1alpha1.Reason*).
	Reason string
	// Message says what is wrong and what to do, without timestamps or counters.
	Message string
}

// HasReason reports whether one of the problems has the reason.
func HasReason(problems []Problem, reason string) bool {
	for _, p := range problems {
		if p.Reason == reason {
			return true
		}
	}
	return false
}

// EditProblems reads the restore record on an object Floodgate edits (or may edit) and says what
// keeps this policy from editing it: a record that cannot be read, another policy's record, or,
// when edits are wanted, another controller's ownership.
func EditProblems(kind string, obj metav1.Object, policy string, edits bool) (*restore.Record, []Problem) {
	var problems []Problem
	rec, err := restore.Read(obj)
	switch {
	case err != nil:
		problems = append(problems, Problem{Reason: v1alpha1.ReasonCorruptRecord,
			Message: fmt.Sprintf("%s %s: the restore record cannot be read (%v); fix or remove the %s annotation by hand", kind, obj.GetName(), err, restore.Annotation)})
	case rec != nil && rec.Policy != policy:
		problems = append(problems, Problem{Reason: v1alpha1.ReasonConflict,
			Message: fmt.Sprintf("%s %s is already changed by policy %s; one policy per object", kind, obj.GetName(), rec.Policy)})
	}
	if owner := metav1.GetControllerOf(obj); owner != nil && edits {
		problems = append(problems, Problem{Reason: v1alpha1.ReasonConflict,
			Message: fmt.Sprintf("%s %s is controlled by %s %s; Floodgate does not edit objects another controller owns", kind, obj.GetName(), owner.Kind, owner.Name)})
	}
	return rec, problems
}

// Observation is what a provider read about one target before any write.
type Observation struct {
	Ref      v1alpha1.TargetRef
	Found    bool
	Problems []Problem
	// Status is the target's status as observed (capabilities, warnings, shared upstreams).
	Status v1alpha1.TargetStatus
	// State is the provider's own observed objects, handed back to Apply.
	State any
}

// Result is what Apply did.
type Result struct {
	Status v1alpha1.TargetStatus
	// KeptOthers names fields someone else changed after Floodgate: they were left as they are.
	KeptOthers []string
}

// Provider carries knobs out on one kind of traffic target.
type Provider interface {
	// Observe reads the target and what surrounds it, and writes nothing.
	Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref v1alpha1.TargetRef, k knobs.Knobs) (*Observation, error)
	// Apply brings an observed target to the knobs. recordCopy is the restore record kept in
	// the policy's status for this target.
	Apply(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *Observation, k knobs.Knobs, recordCopy string) (Result, error)
	// Preview returns what Apply would write, without writing.
	Preview(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *Observation, k knobs.Knobs, recordCopy string) ([]ObjectChange, error)
	// Unsupported says why an observed target cannot take the knobs ("" when it can): a limit of
	// the mechanism, not of the moment, so it is computed for every step up front.
	Unsupported(policy *v1alpha1.TrafficPolicy, obs *Observation, k knobs.Knobs) string
	// Recorded lists the targets in the policy's namespace that carry the policy's restore
	// record, whether or not its spec still names them: a target dropped from the spec is put
	// back even when the policy's status lost track of it.
	Recorded(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]v1alpha1.TargetRef, error)
}

// RecordedBy returns the names of the objects that carry the restore record of policy
// ("namespace/name"). A record that cannot be read names no policy, so it is not listed here;
// the policy's status still names the objects it changed.
func RecordedBy[T any, PT interface {
	*T
	metav1.Object
}](objects []T, policy string) []string {
	var names []string
	for i := range objects {
		if rec, err := restore.Read(PT(&objects[i])); err == nil && rec != nil && rec.Policy == policy {
			names = append(names, PT(&objects[i]).GetName())
		}
	}
	return names
}

// ObjectChange is what a write would do to one object, for previews (`--dry-run`): the parts a
// user owns (labels, annotations, spec) before and after; nil when the object is absent.
type ObjectChange struct {
	Kind   string
	Name   string
	Before map[string]any
	After  map[string]any
}

// UserView keeps the parts of an unstructured object a preview shows: labels, annotations, spec.
func UserView(obj map[string]any) map[string]any {
	if obj == nil {
		return nil
	}
	view := map[string]any{}
	if md, ok := obj["metadata"].(map[string]any); ok {
		m := map[string]any{}
		for _, k := range []string{"labels", "annotations"} {
			if v, ok := md[k]; ok {
				m[k] = v
			}
		}
		if len(m) > 0 {
			view["metadata"] = m
		}
	}
	if spec, ok := obj["spec"]; ok {
		view["spec"] = spec
	}
	return view
}
