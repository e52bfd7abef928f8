package provider

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The scale of whatever an autoscaler scales: Deployments, and StatefulSets and ReplicaSets.
// +kubebuilder:rbac:groups=apps,resources=deployments/scale;statefulsets/scale;replicasets/scale,verbs=get

// Replicas reads a workload's replicas from its /scale subresource: an autoscaler's own status
// lags (and is empty where no autoscaler controller runs).
func Replicas(ctx context.Context, c client.Client, namespace, apiVersion, kind, name string) (int32, error) {
	target := &unstructured.Unstructured{}
	target.SetAPIVersion(apiVersion)
	target.SetKind(kind)
	target.SetNamespace(namespace)
	target.SetName(name)
	scale := &unstructured.Unstructured{}
	scale.SetAPIVersion("autoscaling/v1")
	scale.SetKind("Scale")
	if err := c.SubResource("scale").Get(ctx, target, scale); err != nil {
		return 0, fmt.Errorf("reading the scale of %s %s: %w", kind, name, err)
	}
	replicas, _, _ := unstructured.NestedInt64(scale.Object, "spec", "replicas")
	return int32(replicas), nil
}
