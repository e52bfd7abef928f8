package pass

import (
	"fmt"
	"slices"
	"strings"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
)

// NoteHeld records, for a ramp that holds, which objects exist and what keeps each from the
// step, keeping what was applied before; nothing was written to them.
func NoteHeld(policy *v1alpha1.TrafficPolicy, obs Observation) {
	entries := statusEntries{}
	for _, obj := range obs.objects {
		entries.unwritten(policy, obj, true)
	}
	entries.file(policy)
}

// statusEntries build status.targets and status.autoscalers from one pass's objects.
type statusEntries struct {
	targets     []v1alpha1.TargetStatus
	autoscalers []v1alpha1.AutoscalerStatus
}

// MaxListedTargets is how many targets without a problem status.targets lists for a policy
// with a targetSelector: each entry is about 1 KB, and a fleet of them would not fit in an
// object (etcd's limit is 1.5 MiB).
const MaxListedTargets = 10

// MaxListedProblemTargets is how many targets with a problem status.targets lists, with a
// targetSelector: a fleet-wide problem (every Ingress refused, say) names the first of them, the
// conditions count them all, and the policy object stays bounded however large the fleet.
const MaxListedProblemTargets = 50

// file writes the entries into the policy's status. With a targetSelector, status.targets keeps
// the first MaxListedProblemTargets targets with a problem (or a record to put back) and the first
// MaxListedTargets others.
func (e *statusEntries) file(policy *v1alpha1.TrafficPolicy) {
	policy.Status.Autoscalers = e.autoscalers
	count := int32(0)
	for _, t := range e.targets {
		if t.Found || t.Reason != "" {
			count++
		}
	}
	policy.Status.TargetCount, policy.Status.TargetsNotListed = count, 0
	if policy.Spec.TargetSelector == nil || len(e.targets) <= MaxListedTargets {
		policy.Status.Targets = e.targets
		return
	}
	listed := make([]v1alpha1.TargetStatus, 0, MaxListedTargets)
	others, problems := 0, 0
	for _, t := range e.targets {
		if t.Reason != "" {
			if problems < MaxListedProblemTargets {
				listed = append(listed, t)
				problems++
			}
		} else if others < MaxListedTargets {
			listed = append(listed, t)
			others++
		}
	}
	policy.Status.Targets = listed
	policy.Status.TargetsNotListed = int32(len(e.targets) - len(listed))
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
		failed := slices.ContainsFunc(obj.obs.Problems, provider.WriteFailed)
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
	warnings := s.Warnings
	if w := obj.resolved.Warning; w != "" && obj.obs.Found {
		warnings = append(slices.Clip(warnings), w)
	}
	t := v1alpha1.TargetStatus{Group: obj.ref.Group, Kind: v1alpha1.TargetKind(obj.ref.Kind), Name: obj.ref.Name,
		Found: obj.obs.Found, Applied: s.Target.Applied, Capabilities: s.Target.Capabilities, Companion: s.Target.Companion,
		SharedUpstreamIngresses: s.Target.SharedUpstreamIngresses, Warnings: warnings, RestoreRecord: s.RestoreRecord,
		Unsupported: s.Target.Unsupported}
	if obj.obs.Found {
		t.DataPlanes = obj.resolved.Strings()
	}
	return t
}

func autoscalerStatusOf(obj *object, s provider.Status) v1alpha1.AutoscalerStatus {
	return v1alpha1.AutoscalerStatus{APIGroup: obj.ref.Group, Kind: v1alpha1.AutoscalerKind(obj.ref.Kind), Name: obj.ref.Name,
		Found: obj.obs.Found, Held: s.Autoscaler.Held, HeldMinReplicas: s.Autoscaler.HeldMinReplicas, MinReplicas: s.Autoscaler.MinReplicas,
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
