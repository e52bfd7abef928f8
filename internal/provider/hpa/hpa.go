// Package hpa holds and releases HorizontalPodAutoscalers so the fleet does not shrink while
// traffic is held off: scale-down disabled and minReplicas raised to the replicas the workload
// had when the hold began (read from its /scale subresource), never above maxReplicas. Both
// fields are recorded with the restore record first and put back on release, in stages.
package hpa

import (
	"context"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
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

// BoundedScaleDown is the scale-down policy while a hold is released: at most 10% of the
// replicas per minute.
var BoundedScaleDown = []any{map[string]any{"type": "Percent", "value": int64(10), "periodSeconds": int64(60)}}

// The RBAC this provider needs (read from the cache: list and watch).
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=list;watch;patch

// Provider holds autoscaling/v2 HorizontalPodAutoscalers.
type Provider struct {
	Client client.Client
}

var _ provider.Provider = (*Provider)(nil)

// GroupKind is autoscaling HorizontalPodAutoscaler.
func (h *Provider) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: v1alpha1.GroupAutoscaling, Kind: string(v1alpha1.AutoscalerKindHPA)}
}

// Object is an empty object of the kind, for watches.
func (h *Provider) Object() client.Object { return &autoscalingv2.HorizontalPodAutoscaler{} }

// Role: an HPA scales a workload.
func (h *Provider) Role() provider.Role { return provider.Autoscaler }

// observed is what Observe read, for Render.
type observed struct {
	hpa    *autoscalingv2.HorizontalPodAutoscaler
	record *restore.Record
	// replicas the workload has now (read only when a hold begins; -1 otherwise).
	replicas int32
}

// Observe reads the autoscaler, and the workload's replicas when a hold begins; it writes nothing.
func (h *Provider) Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref provider.Ref, d provider.Desired) (*provider.Observation, error) {
	obs := &provider.Observation{Ref: ref, StabilizationWindow: provider.DefaultStabilizationWindow}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	err := h.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, &hpa)
	if apierrors.IsNotFound(err) {
		return obs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading HorizontalPodAutoscaler %s: %w", ref.Name, err)
	}
	obs.Found, obs.Status.Found, obs.UID = true, true, hpa.UID
	st := &observed{hpa: &hpa, replicas: -1}
	obs.State = st
	if owner := metav1.GetControllerOf(&hpa); owner != nil && owner.Kind == string(v1alpha1.AutoscalerKindScaledObject) {
		obs.Problems = append(obs.Problems, provider.NewProblem(fmt.Sprintf(
			"HorizontalPodAutoscaler %s is controlled by ScaledObject %s (KEDA generates it and undoes any edit of it): "+
				"name the ScaledObject instead (autoscalerRefs: [{apiGroup: keda.sh, kind: ScaledObject, name: %s}])",
			hpa.Name, owner.Name, owner.Name), provider.ErrControlledByOther))
		return obs, nil
	}
	st.record, obs.Problems = provider.EditProblems("HorizontalPodAutoscaler", &hpa, policy.Namespace+"/"+policy.Name, d.Holds())
	obs.StabilizationWindow = stabilizationWindow(originalBehavior(&hpa, st.record))
	if d.Holds() && len(obs.Problems) == 0 && d.Peak == 0 && heldPeak(st.record) == 0 {
		// A hold begins at the replicas the workload has now. Not knowing them keeps this
		// autoscaler (only) from the hold, and says why.
		if st.replicas, err = h.currentReplicas(ctx, &hpa); err != nil {
			obs.Problems = append(obs.Problems, provider.ProblemOf(fmt.Errorf("HorizontalPodAutoscaler %s: %w", hpa.Name, err)))
		}
	}
	return obs, nil
}

// Unsupported: an HPA takes every hold.
func (h *Provider) Unsupported(*v1alpha1.TrafficPolicy, *provider.Observation, provider.Desired) string {
	return ""
}

// Indexes: HPAs are listed by the restore record they carry.
func (h *Provider) Indexes() []provider.Index {
	return []provider.Index{{Object: &autoscalingv2.HorizontalPodAutoscaler{}, Field: provider.IndexRecordedBy, Extract: provider.RecordedByIndex}}
}

// Recorded lists the HorizontalPodAutoscalers of the policy's namespace that carry its restore
// record, whether or not its spec still names them (never one another controller controls).
func (h *Provider) Recorded(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]provider.Ref, error) {
	var all autoscalingv2.HorizontalPodAutoscalerList
	if err := provider.ListRecorded(ctx, h.Client, policy, &all); err != nil {
		return nil, fmt.Errorf("listing HorizontalPodAutoscalers: %w", err)
	}
	return provider.RecordedRefs(all.Items, policy, h.GroupKind()), nil
}

// Render computes the hold (or its release) an observed autoscaler needs, writing nothing.
func (h *Provider) Render(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, d provider.Desired, recordCopy string) (provider.Change, error) {
	return provider.RenderAutoscaler(policy, obs, d, recordCopy, pathMinReplicas, holdChanges,
		func(st *observed) *unstructured.Unstructured { return toUnstructured(st.hpa) })
}

// heldPeak is the minReplicas a hold in the record set (0: none).
func heldPeak(rec *restore.Record) int32 {
	if rec == nil {
		return 0
	}
	for _, f := range rec.Fields {
		var v int64
		if f.PathString() == "spec.minReplicas" && utiljson.Unmarshal(f.Set, &v) == nil {
			return int32(v)
		}
	}
	return 0
}

// holdChanges computes the fields a hold level wants. Where the record already holds a value
// of the same kind (the API server's stored form), it is kept, so a steady hold writes nothing.
func holdChanges(obs *observed, d provider.Desired) ([]restore.Change, int32, error) {
	level := struct{ Stage, Peak int32 }{d.Knobs.ReleaseStage, d.Peak}
	held := map[string]any{}
	originals := map[string]any{}
	if obs.record != nil {
		for _, f := range obs.record.Fields {
			var v any
			if err := utiljson.Unmarshal(f.Set, &v); err != nil {
				return nil, 0, fmt.Errorf("HorizontalPodAutoscaler %s: %w", obs.hpa.Name, restore.ErrCorrupt)
			}
			held[f.PathString()] = v
			if !f.Absent {
				if err := utiljson.Unmarshal(f.Original, &v); err != nil {
					return nil, 0, fmt.Errorf("HorizontalPodAutoscaler %s: %w", obs.hpa.Name, restore.ErrCorrupt)
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
		if obs.replicas < 0 {
			return nil, 0, fmt.Errorf("HorizontalPodAutoscaler %s: the workload's replicas were not read", hpa.Name)
		}
		peak = min(max(origMin, obs.replicas), hpa.Spec.MaxReplicas)
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
				return nil, 0, fmt.Errorf("reading behavior of %s: %w", hpa.Name, err)
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

// currentReplicas reads the replicas of the workload the HPA scales.
func (h *Provider) currentReplicas(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler) (int32, error) {
	ref := hpa.Spec.ScaleTargetRef
	return provider.Replicas(ctx, h.Client, hpa.Namespace, ref.APIVersion, ref.Kind, ref.Name)
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
		return provider.DefaultStabilizationWindow
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

// ScaleTarget is the kind and name of the workload an HPA of the namespace scales (its
// scaleTargetRef), read from the cache.
func (h *Provider) ScaleTarget(ctx context.Context, namespace, name string) (kind, target string, err error) {
	var hpa autoscalingv2.HorizontalPodAutoscaler
	if err := h.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &hpa); err != nil {
		return "", "", err
	}
	return hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name, nil
}
