// Package provider is the small interface every traffic provider implements: observe a target
// (reads only, so the controller can refuse before anything is half applied), then apply knobs to
// it (zero knobs put everything back as it was).
package provider

import (
	"context"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
)

// Problem is something that keeps a target from taking the knobs: nothing is written to any
// target while one is reported.
type Problem struct {
	// Reason is a condition reason (v1alpha1.Reason*).
	Reason string
	// Message says what is wrong and what to do, without timestamps or counters.
	Message string
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
	// NeedsShedBackend is true when the target routes shed traffic to the shed Service.
	NeedsShedBackend bool
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
