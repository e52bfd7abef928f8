package pass

import (
	"context"
	"fmt"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
)

// References, defaulted as the CRD defaults them (a policy built in Go may leave them empty).

func targetRef(group, kind, name string) provider.Ref {
	group, kind = v1alpha1.TargetRef{Group: group, Kind: v1alpha1.TargetKind(kind)}.GroupKind()
	return provider.Ref{Group: group, Kind: kind, Name: name}
}

func autoscalerRef(group, kind, name string) provider.Ref {
	group, kind = v1alpha1.AutoscalerRef{APIGroup: group, Kind: v1alpha1.AutoscalerKind(kind)}.GroupKind()
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

// TargetState is what one target carries of a policy now, as read from the cluster.
type TargetState struct {
	Ref   provider.Ref
	Found bool
	// Companions are the companions of the target the policy controls (its canary).
	Companions []string
	// Recorded is true when the target carries the policy's restore record.
	Recorded bool
}

// TargetStates reads every target of the policy, named and selected, however many: what
// `kubectl floodgate status --targets` lists when status.targets cannot hold them all.
func (r *Pass) TargetStates(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]TargetState, error) {
	refs, _, err := r.targets(ctx, policy)
	if err != nil {
		return nil, err
	}
	out := make([]TargetState, 0, len(refs))
	for _, ref := range refs {
		st := TargetState{Ref: ref}
		p, err := r.Providers.For(ref)
		if err != nil {
			out = append(out, st)
			continue
		}
		obj := p.Object()
		err = r.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, obj)
		if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("reading %s: %w", ref, err)
		}
		st.Found = err == nil
		if rec, rerr := restore.Read(obj); st.Found && rerr == nil && rec != nil && rec.Policy == policy.Namespace+"/"+policy.Name {
			st.Recorded = true
		}
		if c, ok := p.(provider.Companioned); ok {
			for _, name := range c.CompanionNames(policy, ref.Name) {
				comp := p.Object()
				if err := r.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: name}, comp); err == nil && owned.IsOurs(comp, policy) {
					st.Companions = append(st.Companions, name)
				}
			}
		}
		out = append(out, st)
	}
	return out, nil
}
