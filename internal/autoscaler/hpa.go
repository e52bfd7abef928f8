// Package autoscaler holds and releases HorizontalPodAutoscalers so the fleet does not shrink
// while traffic is held off: scale-down disabled and minReplicas raised to the replicas the
// workload had when the hold began (read from its /scale subresource), never above maxReplicas.
// Both fields are recorded with the restore record first and put back on release.
package autoscaler

import (
	"context"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
)

var (
	pathMinReplicas = []string{"spec", "minReplicas"}
	pathBehavior    = []string{"spec", "behavior"}
)

// DefaultStabilizationWindow is the HPA's default scale-down stabilization window.
const DefaultStabilizationWindow = 300 * time.Second

// Level is how hard an autoscaler is held.
type Level struct {
	// Hold is false when the autoscaler is released (originals restored).
	Hold bool
	// Stage of the gradual release: 0 holds fully (no scale-down, minReplicas at the peak);
	// 1..knobs.ReleaseStages re-enable a bounded scale-down and lower minReplicas stepwise.
	Stage int32
	// Peak is the minReplicas the hold began with (0 when not known yet: read from /scale).
	Peak int32
}

// BoundedScaleDown is the scale-down policy while a hold is released: at most 10% of the
// replicas per minute.
var BoundedScaleDown = []any{map[string]any{"type": "Percent", "value": int64(10), "periodSeconds": int64(60)}}

// HPA holds autoscaling/v2 HorizontalPodAutoscalers.
type HPA struct {
	Client client.Client
}

// Observation is what was read about one autoscaler before any write.
type Observation struct {
	Name     string
	Found    bool
	Problems []provider.Problem
	// StabilizationWindow is the autoscaler's own scale-down stabilization window (before any
	// change of Floodgate's).
	StabilizationWindow time.Duration
	hpa                 *autoscalingv2.HorizontalPodAutoscaler
	record              *restore.Record
}

// Observe reads the autoscaler and writes nothing.
func (h *HPA) Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref v1alpha1.AutoscalerRef, hold bool) (*Observation, error) {
	obs := &Observation{Name: ref.Name, StabilizationWindow: DefaultStabilizationWindow}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	err := h.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, &hpa)
	if apierrors.IsNotFound(err) {
		return obs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading HorizontalPodAutoscaler %s: %w", ref.Name, err)
	}
	obs.Found, obs.hpa = true, &hpa

	obs.record, obs.Problems = provider.EditProblems("HorizontalPodAutoscaler", &hpa, policy.Namespace+"/"+policy.Name, hold)
	obs.StabilizationWindow = stabilizationWindow(originalBehavior(&hpa, obs.record))
	return obs, nil
}

// Recorded lists the HorizontalPodAutoscalers of the policy's namespace that carry its restore
// record, whether or not its spec still names them.
func (h *HPA) Recorded(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]string, error) {
	var all autoscalingv2.HorizontalPodAutoscalerList
	if err := h.Client.List(ctx, &all, client.InNamespace(policy.Namespace)); err != nil {
		return nil, fmt.Errorf("listing HorizontalPodAutoscalers: %w", err)
	}
	return provider.RecordedBy(all.Items, policy.Namespace+"/"+policy.Name), nil
}

// Apply holds an observed autoscaler at a level, or releases it.
func (h *HPA) Apply(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *Observation, level Level, recordCopy string) (v1alpha1.AutoscalerStatus, []string, error) {
	st := v1alpha1.AutoscalerStatus{Name: obs.Name, Found: obs.Found}
	if !obs.Found {
		return st, nil, nil
	}
	var changes []restore.Change
	peak := int32(0)
	if level.Hold {
		var err error
		if changes, peak, err = h.holdChanges(ctx, obs, level); err != nil {
			return st, nil, err
		}
	}
	u := toUnstructured(obs.hpa)
	before := u.DeepCopy()
	out, err := restore.Reconcile(u, policy.Namespace+"/"+policy.Name, changes, recordCopy)
	if err != nil {
		return st, nil, fmt.Errorf("HorizontalPodAutoscaler %s: %w", obs.Name, err)
	}
	if out.Changed {
		if err := h.Client.Patch(ctx, u, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return st, nil, fmt.Errorf("patching HorizontalPodAutoscaler %s: %w", obs.Name, err)
		}
		// The API server defaults the rest of spec.behavior: record the stored subtree as
		// Floodgate's value, so restore recognises it.
		if afterWrite := u.DeepCopy(); restore.AdoptStored(u, out.Record) {
			if err := h.Client.Patch(ctx, u, client.MergeFromWithOptions(afterWrite, client.MergeFromWithOptimisticLock{})); err != nil {
				return st, nil, fmt.Errorf("recording defaults on HorizontalPodAutoscaler %s: %w", obs.Name, err)
			}
		}
	}
	if out.Record != nil {
		st.RestoreRecord = out.Record.Encode()
		st.Held = level.Hold
		st.HeldMinReplicas = peak
		if v, found, _ := unstructured.NestedInt64(u.Object, pathMinReplicas...); found {
			st.MinReplicas = int32(v)
		}
	}
	return st, out.KeptOthers, nil
}

// Preview returns what Apply would write, without writing.
func (h *HPA) Preview(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *Observation, level Level, recordCopy string) (provider.ObjectChange, error) {
	change := provider.ObjectChange{Kind: "HorizontalPodAutoscaler", Name: obs.Name}
	if !obs.Found {
		return change, nil
	}
	var changes []restore.Change
	if level.Hold {
		var err error
		if changes, _, err = h.holdChanges(ctx, obs, level); err != nil {
			return change, err
		}
	}
	u := toUnstructured(obs.hpa)
	change.Before = provider.UserView(u.DeepCopy().Object)
	if _, err := restore.Reconcile(u, policy.Namespace+"/"+policy.Name, changes, recordCopy); err != nil {
		return change, fmt.Errorf("HorizontalPodAutoscaler %s: %w", obs.Name, err)
	}
	change.After = provider.UserView(u.Object)
	return change, nil
}

// holdChanges computes the fields a hold level wants. Where the record already holds a value
// of the same kind (the API server's stored form), it is kept, so a steady hold writes nothing.
func (h *HPA) holdChanges(ctx context.Context, obs *Observation, level Level) ([]restore.Change, int32, error) {
	held := map[string]any{}
	originals := map[string]any{}
	if obs.record != nil {
		for _, f := range obs.record.Fields {
			var v any
			if err := utiljson.Unmarshal(f.Set, &v); err != nil {
				return nil, 0, fmt.Errorf("HorizontalPodAutoscaler %s: %w", obs.Name, restore.ErrCorrupt)
			}
			held[f.PathString()] = v
			if !f.Absent {
				if err := utiljson.Unmarshal(f.Original, &v); err != nil {
					return nil, 0, fmt.Errorf("HorizontalPodAutoscaler %s: %w", obs.Name, restore.ErrCorrupt)
				}
				originals[f.PathString()] = v
			} else {
				originals[f.PathString()] = nil
			}
		}
	}
	hpa := obs.hpa
	origMin := int32(1)
	if hpa.Spec.MinReplicas != nil {
		origMin = *hpa.Spec.MinReplicas
	}
	if v, ok := originals["spec.minReplicas"].(int64); ok {
		origMin = int32(v)
	}
	peak := level.Peak
	if v, ok := held["spec.minReplicas"].(int64); ok && peak == 0 {
		peak = int32(v)
	}
	if peak == 0 {
		replicas, err := h.currentReplicas(ctx, hpa)
		if err != nil {
			return nil, 0, err
		}
		peak = min(max(origMin, replicas), hpa.Spec.MaxReplicas)
	}
	minReplicas := peak
	if level.Stage > 0 {
		// Lowered stepwise from the peak to the original over the release stages.
		n := int32(knobs.ReleaseStages)
		minReplicas = origMin + (max(peak-origMin, 0)*(n-min(level.Stage, n))+n-1)/n
	}

	wantDisabled := level.Stage == 0
	behavior, ok := held["spec.behavior"].(map[string]any)
	if !ok || isDisabled(behavior) != wantDisabled {
		b := map[string]any{}
		if orig, recorded := originals["spec.behavior"]; recorded {
			if m, isMap := orig.(map[string]any); isMap {
				b = m
			}
		} else if hpa.Spec.Behavior != nil {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(hpa.Spec.Behavior)
			if err != nil {
				return nil, 0, fmt.Errorf("reading behavior of %s: %w", obs.Name, err)
			}
			b = m
		}
		if wantDisabled {
			if err := unstructured.SetNestedField(b, string(autoscalingv2.DisabledPolicySelect), "scaleDown", "selectPolicy"); err != nil {
				return nil, 0, err
			}
		} else {
			scaleDown, _, _ := unstructured.NestedMap(b, "scaleDown")
			if scaleDown == nil {
				scaleDown = map[string]any{}
			}
			scaleDown["selectPolicy"] = string(autoscalingv2.MaxChangePolicySelect)
			scaleDown["policies"] = BoundedScaleDown
			b["scaleDown"] = scaleDown
		}
		behavior = b
	}
	return []restore.Change{
		{Path: pathMinReplicas, Value: int64(minReplicas)},
		{Path: pathBehavior, Value: behavior},
	}, peak, nil
}

func isDisabled(behavior map[string]any) bool {
	policy, _, _ := unstructured.NestedString(behavior, "scaleDown", "selectPolicy")
	return policy == string(autoscalingv2.DisabledPolicySelect)
}

// currentReplicas reads the workload's replicas from its /scale subresource: the HPA's own status
// lags (and is empty where no HPA controller runs).
func (h *HPA) currentReplicas(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler) (int32, error) {
	ref := hpa.Spec.ScaleTargetRef
	target := &unstructured.Unstructured{}
	target.SetAPIVersion(ref.APIVersion)
	target.SetKind(ref.Kind)
	target.SetNamespace(hpa.Namespace)
	target.SetName(ref.Name)
	scale := &unstructured.Unstructured{}
	scale.SetAPIVersion("autoscaling/v1")
	scale.SetKind("Scale")
	if err := h.Client.SubResource("scale").Get(ctx, target, scale); err != nil {
		return 0, fmt.Errorf("reading the scale of %s %s: %w", ref.Kind, ref.Name, err)
	}
	replicas, _, _ := unstructured.NestedInt64(scale.Object, "spec", "replicas")
	return int32(replicas), nil
}

// originalBehavior is the behavior before Floodgate's change.
func originalBehavior(hpa *autoscalingv2.HorizontalPodAutoscaler, rec *restore.Record) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	if rec == nil {
		return hpa.Spec.Behavior
	}
	for _, f := range rec.Fields {
		if f.PathString() != "spec.behavior" {
			continue
		}
		if f.Absent {
			return nil
		}
		var b autoscalingv2.HorizontalPodAutoscalerBehavior
		if err := utiljson.Unmarshal(f.Original, &b); err != nil {
			return nil
		}
		return &b
	}
	return hpa.Spec.Behavior
}

func stabilizationWindow(b *autoscalingv2.HorizontalPodAutoscalerBehavior) time.Duration {
	if b == nil || b.ScaleDown == nil || b.ScaleDown.StabilizationWindowSeconds == nil {
		return DefaultStabilizationWindow
	}
	return time.Duration(*b.ScaleDown.StabilizationWindowSeconds) * time.Second
}

func toUnstructured(obj *autoscalingv2.HorizontalPodAutoscaler) *unstructured.Unstructured {
	u, err := restore.FromTyped(obj, autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"))
	if err != nil {
		// A typed object the scheme knows always converts.
		panic(err)
	}
	return u
}
