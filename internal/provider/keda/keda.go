// Package keda holds and releases KEDA ScaledObjects. KEDA owns the HPA it generates and rebuilds
// it on every change, so the hold is put on the ScaledObject, with KEDA's own levers:
//
//   - held: the annotation autoscaling.keda.sh/paused-scale-in: "true" (KEDA sets the HPA's
//     scale-down selectPolicy to Disabled and does not scale to zero) and spec.minReplicaCount
//     raised to the replicas the scale target has now (read through /scale), clamped to
//     maxReplicaCount (100 when unset);
//   - released in stages: the annotation goes first (it would force Disabled over the bounded
//     scale-down), then minReplicaCount is lowered stepwise with scale-down bounded through
//     spec.advanced.horizontalPodAutoscalerConfig.behavior;
//   - at the end every original (annotations and spec fields, absent ones included) is back.
//
// Every field is recorded with the restore record first, on the ScaledObject. KEDA copies a
// ScaledObject's annotations onto its HPA: the record there names the ScaledObject's UID, so the
// HPA is never taken for an object of Floodgate's.
package keda

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/hpa"
	"floodgate.dev/floodgate/internal/restore"
)

// PausedScaleIn is KEDA's annotation that stops a ScaledObject's HPA from scaling in.
const PausedScaleIn = "autoscaling.keda.sh/paused-scale-in"

// MinimumVersion is the KEDA version whose removal of paused-scale-in restores the HPA's own
// behavior (before it, the Disabled select policy stays until the ScaledObject changes again).
const MinimumVersion = "2.18.2"

// DefaultMaxReplicaCount is KEDA's maxReplicaCount when a ScaledObject sets none.
const DefaultMaxReplicaCount = 100

// GVK is keda.sh/v1alpha1 ScaledObject.
var GVK = schema.GroupVersionKind{Group: v1alpha1.GroupKEDA, Version: "v1alpha1", Kind: string(v1alpha1.AutoscalerKindScaledObject)}

var (
	pathPaused   = []string{"metadata", "annotations", PausedScaleIn}
	pathMin      = []string{"spec", "minReplicaCount"}
	pathBehavior = []string{"spec", "advanced", "horizontalPodAutoscalerConfig", "behavior"}
)

// The RBAC this provider needs: KEDA's ScaledObjects, where KEDA is installed (read live, not
// cached: get).
// +kubebuilder:rbac:groups=keda.sh,resources=scaledobjects,verbs=get;list;watch;patch

// Provider holds KEDA ScaledObjects.
type Provider struct {
	Client client.Client
}

var _ provider.Provider = (*Provider)(nil)

// GroupKind is keda.sh ScaledObject.
func (p *Provider) GroupKind() schema.GroupKind { return GVK.GroupKind() }

// Object is an empty ScaledObject, for watches.
func (p *Provider) Object() client.Object {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(GVK)
	return u
}

// Role: a ScaledObject scales a workload.
func (p *Provider) Role() provider.Role { return provider.Autoscaler }

type observed struct {
	so     *unstructured.Unstructured
	record *restore.Record
	// replicas the scale target has now (read only when a hold begins; -1 otherwise).
	replicas int32
}

// Observe reads the ScaledObject, and its scale target's replicas when a hold begins.
func (p *Provider) Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref provider.Ref, d provider.Desired) (*provider.Observation, error) {
	obs := &provider.Observation{Ref: ref, StabilizationWindow: provider.DefaultStabilizationWindow}
	so := &unstructured.Unstructured{}
	so.SetGroupVersionKind(GVK)
	err := p.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, so)
	if apierrors.IsNotFound(err) {
		return obs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading ScaledObject %s: %w", ref.Name, err)
	}
	obs.Found, obs.Status.Found, obs.UID = true, true, so.GetUID()
	obs.Status.Warnings = []string{fmt.Sprintf("the hold uses KEDA's %s annotation: KEDA %s or later is needed "+
		"for its removal to give the HPA its own scale-down behavior back", PausedScaleIn, MinimumVersion)}
	st := &observed{so: so, replicas: -1}
	obs.State = st
	st.record, obs.Problems = provider.EditProblems("ScaledObject", so, key(policy), d.Holds())
	obs.StabilizationWindow = stabilizationWindow(original(so, st.record, pathBehavior))
	if d.Holds() && len(obs.Problems) == 0 && d.Peak == 0 && heldMin(st.record) == 0 {
		// A hold begins at the replicas the scale target has now.
		if st.replicas, err = p.targetReplicas(ctx, so); err != nil {
			obs.Problems = append(obs.Problems, provider.ProblemOf(fmt.Errorf("ScaledObject %s: %w", so.GetName(), err)))
		}
	}
	return obs, nil
}

// Unsupported: a ScaledObject takes every hold.
func (p *Provider) Unsupported(*v1alpha1.TrafficPolicy, *provider.Observation, provider.Desired) string {
	return ""
}

// Recorded lists the ScaledObjects of the policy's namespace that carry its restore record.
func (p *Provider) Recorded(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]provider.Ref, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(GVK.GroupVersion().WithKind(GVK.Kind + "List"))
	if err := p.Client.List(ctx, list, client.InNamespace(policy.Namespace)); err != nil {
		return nil, fmt.Errorf("listing ScaledObjects: %w", err)
	}
	return provider.RecordedRefs(list.Items, policy, p.GroupKind()), nil
}

// Render computes the hold (or its release) an observed ScaledObject needs, writing nothing.
func (p *Provider) Render(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, d provider.Desired, recordCopy string) (provider.Change, error) {
	return provider.RenderAutoscaler(policy, obs, d, recordCopy, pathMin, holdChanges,
		func(st *observed) *unstructured.Unstructured { return st.so })
}

// holdChanges are the fields a hold level wants: stage 0 pauses scale-in and raises the minimum
// to the peak; each release stage lowers the minimum a step, with scale-down bounded.
func holdChanges(st *observed, d provider.Desired) ([]restore.Change, int32, error) {
	origMin := int32(0)
	if v, ok := original(st.so, st.record, pathMin).(int64); ok {
		origMin = int32(v)
	}
	maxReplicas := int32(DefaultMaxReplicaCount)
	if v, found, _ := unstructured.NestedInt64(st.so.Object, "spec", "maxReplicaCount"); found {
		maxReplicas = int32(v)
	}
	peak := d.Peak
	if peak == 0 {
		peak = heldMin(st.record)
	}
	if peak == 0 {
		if st.replicas < 0 {
			return nil, 0, fmt.Errorf("ScaledObject %s: the scale target's replicas were not read", st.so.GetName())
		}
		peak = min(max(origMin, st.replicas), maxReplicas)
	}
	stage := min(d.Knobs.ReleaseStage, knobs.ReleaseStages)
	if stage == 0 {
		return []restore.Change{
			{Path: pathPaused, Value: "true"},
			{Path: pathMin, Value: int64(peak)},
		}, peak, nil
	}
	// Lowered stepwise from the peak to the original over the release stages.
	n := int32(knobs.ReleaseStages)
	minReplicas := origMin + (max(peak-origMin, 0)*(n-stage)+n-1)/n
	behavior := map[string]any{}
	if orig, ok := original(st.so, st.record, pathBehavior).(map[string]any); ok {
		behavior = orig
	}
	scaleDown, _, _ := unstructured.NestedMap(behavior, "scaleDown")
	if scaleDown == nil {
		scaleDown = map[string]any{}
	}
	scaleDown["selectPolicy"] = "Max"
	scaleDown["policies"] = hpa.BoundedScaleDown
	behavior["scaleDown"] = scaleDown
	return []restore.Change{
		{Path: pathMin, Value: int64(minReplicas)},
		{Path: pathBehavior, Value: behavior},
	}, peak, nil
}

// original is a field's value before Floodgate's change (from the record), or as it is now.
func original(so *unstructured.Unstructured, rec *restore.Record, path []string) any {
	if rec != nil {
		for _, f := range rec.Fields {
			if f.PathString() != joined(path) {
				continue
			}
			if f.Absent {
				return nil
			}
			var v any
			if utiljson.Unmarshal(f.Original, &v) != nil {
				return nil
			}
			return v
		}
	}
	v, found, _ := unstructured.NestedFieldCopy(so.Object, path...)
	if !found {
		return nil
	}
	return v
}

// heldMin is the minimum a hold in the record set (0: none).
func heldMin(rec *restore.Record) int32 {
	if rec == nil {
		return 0
	}
	for _, f := range rec.Fields {
		var v int64
		if f.PathString() == joined(pathMin) && utiljson.Unmarshal(f.Set, &v) == nil {
			return int32(v)
		}
	}
	return 0
}

// targetReplicas reads the scale target's replicas from its /scale subresource.
func (p *Provider) targetReplicas(ctx context.Context, so *unstructured.Unstructured) (int32, error) {
	apiVersion, kind, name := scaleTargetRef(so)
	return provider.Replicas(ctx, p.Client, so.GetNamespace(), apiVersion, kind, name)
}

// scaleTargetRef is what a ScaledObject scales, defaulted as KEDA defaults it (apps/v1
// Deployment).
func scaleTargetRef(so *unstructured.Unstructured) (apiVersion, kind, name string) {
	apiVersion, _, _ = unstructured.NestedString(so.Object, "spec", "scaleTargetRef", "apiVersion")
	kind, _, _ = unstructured.NestedString(so.Object, "spec", "scaleTargetRef", "kind")
	name, _, _ = unstructured.NestedString(so.Object, "spec", "scaleTargetRef", "name")
	if apiVersion == "" {
		apiVersion = "apps/v1"
	}
	if kind == "" {
		kind = "Deployment"
	}
	return apiVersion, kind, name
}

// ScaleTarget is the kind and name of the workload a ScaledObject of the namespace scales (its
// scaleTargetRef), read from the cache.
func (p *Provider) ScaleTarget(ctx context.Context, namespace, name string) (kind, target string, err error) {
	so := &unstructured.Unstructured{}
	so.SetGroupVersionKind(GVK)
	if err := p.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, so); err != nil {
		return "", "", err
	}
	_, kind, target = scaleTargetRef(so)
	return kind, target, nil
}

func stabilizationWindow(behavior any) time.Duration {
	b, ok := behavior.(map[string]any)
	if !ok {
		return provider.DefaultStabilizationWindow
	}
	if s, found, _ := unstructured.NestedInt64(b, "scaleDown", "stabilizationWindowSeconds"); found {
		return time.Duration(s) * time.Second
	}
	return provider.DefaultStabilizationWindow
}

func joined(path []string) string { return strings.Join(path, ".") }

func key(policy *v1alpha1.TrafficPolicy) string { return policy.Namespace + "/" + policy.Name }
