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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
)

var (
	pathMinReplicas = []string{"spec", "minReplicas"}
	pathBehavior    = []string{"spec", "behavior"}
)

// DefaultStabilizationWindow is the HPA's default scale-down stabilization window.
const DefaultStabilizationWindow = 300 * time.Second

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

	rec, err := restore.Read(toUnstructured(&hpa))
	switch {
	case err != nil:
		obs.Problems = append(obs.Problems, provider.Problem{Reason: v1alpha1.ReasonCorruptRecord,
			Message: fmt.Sprintf("HorizontalPodAutoscaler %s: the restore record cannot be read (%v); fix or remove the %s annotation by hand", ref.Name, err, restore.Annotation)})
	case rec != nil && rec.Policy != policy.Namespace+"/"+policy.Name:
		obs.Problems = append(obs.Problems, provider.Problem{Reason: v1alpha1.ReasonConflict,
			Message: fmt.Sprintf("HorizontalPodAutoscaler %s is already held by policy %s; one policy per autoscaler", ref.Name, rec.Policy)})
	}
	obs.record = rec
	if owner := metav1.GetControllerOf(&hpa); owner != nil && hold {
		obs.Problems = append(obs.Problems, provider.Problem{Reason: v1alpha1.ReasonConflict,
			Message: fmt.Sprintf("HorizontalPodAutoscaler %s is controlled by %s %s; Floodgate does not edit objects another controller owns", ref.Name, owner.Kind, owner.Name)})
	}
	obs.StabilizationWindow = stabilizationWindow(originalBehavior(&hpa, rec))
	return obs, nil
}

// Apply holds (hold) or releases (!hold) an observed autoscaler.
func (h *HPA) Apply(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *Observation, hold bool, recordCopy string) (v1alpha1.AutoscalerStatus, []string, error) {
	st := v1alpha1.AutoscalerStatus{Name: obs.Name, Found: obs.Found}
	if !obs.Found {
		return st, nil, nil
	}
	var changes []restore.Change
	if hold {
		var err error
		if changes, err = h.holdChanges(ctx, obs); err != nil {
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
		st.Held = hold
		if v, found, _ := unstructured.NestedInt64(u.Object, pathMinReplicas...); found && hold {
			st.HeldMinReplicas = int32(v)
		}
	}
	return st, out.KeptOthers, nil
}

// Preview returns what Apply would write, without writing.
func (h *HPA) Preview(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *Observation, hold bool, recordCopy string) (provider.ObjectChange, error) {
	change := provider.ObjectChange{Kind: "HorizontalPodAutoscaler", Name: obs.Name}
	if !obs.Found {
		return change, nil
	}
	var changes []restore.Change
	if hold {
		var err error
		if changes, err = h.holdChanges(ctx, obs); err != nil {
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

// holdChanges keeps the values of a hold already in force, or computes them when it begins.
func (h *HPA) holdChanges(ctx context.Context, obs *Observation) ([]restore.Change, error) {
	held := map[string]any{}
	if obs.record != nil {
		for _, f := range obs.record.Fields {
			var v any
			if err := utiljson.Unmarshal(f.Set, &v); err != nil {
				return nil, fmt.Errorf("HorizontalPodAutoscaler %s: %w", obs.Name, restore.ErrCorrupt)
			}
			held[f.PathString()] = v
		}
	}
	hpa := obs.hpa
	minReplicas, ok := held["spec.minReplicas"]
	if !ok {
		replicas, err := h.currentReplicas(ctx, hpa)
		if err != nil {
			return nil, err
		}
		current := int32(1)
		if hpa.Spec.MinReplicas != nil {
			current = *hpa.Spec.MinReplicas
		}
		minReplicas = int64(min(max(current, replicas), hpa.Spec.MaxReplicas))
	}
	behavior, ok := held["spec.behavior"]
	if !ok {
		b := map[string]any{}
		if hpa.Spec.Behavior != nil {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(hpa.Spec.Behavior)
			if err != nil {
				return nil, fmt.Errorf("reading behavior of %s: %w", obs.Name, err)
			}
			b = m
		}
		if err := unstructured.SetNestedField(b, string(autoscalingv2.DisabledPolicySelect), "scaleDown", "selectPolicy"); err != nil {
			return nil, err
		}
		behavior = b
	}
	return []restore.Change{
		{Path: pathMinReplicas, Value: minReplicas},
		{Path: pathBehavior, Value: behavior},
	}, nil
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
