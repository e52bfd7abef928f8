package provider

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/restore"
)

// Hold is an autoscaler's hold as a provider computed it: the fields it wants (none: released),
// the minimum the hold began with, and where the object keeps its minimum.
type Hold struct {
	Changes []restore.Change
	Peak    int32
	MinPath []string
}

// RenderHold renders a hold on an autoscaler read as obj: the wanted fields set with the restore
// record (or the originals put back when none is wanted), and the hold's status.
func RenderHold(policy *v1alpha1.TrafficPolicy, obs *Observation, obj *unstructured.Unstructured, h Hold, held bool, recordCopy string) (Change, error) {
	ch := Change{Status: obs.Status, Before: obj.DeepCopy(), After: obj.DeepCopy()}
	out, err := restore.Reconcile(ch.After, policy.Namespace+"/"+policy.Name, h.Changes, recordCopy)
	if err != nil {
		return ch, fmt.Errorf("%s: %w", obs.Ref, err)
	}
	ch.KeptOthers = out.KeptOthers
	if out.Record != nil {
		ch.Status.RestoreRecord = out.Record.Encode()
		ch.Status.Held, ch.Status.HeldMinReplicas = held, h.Peak
		if v, found, _ := unstructured.NestedInt64(ch.After.Object, h.MinPath...); found {
			ch.Status.MinReplicas = int32(v)
		}
	}
	return ch, nil
}
