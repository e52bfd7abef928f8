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

// RenderAutoscaler renders the hold (or its release) an observed autoscaler of state S needs,
// writing nothing: nothing when the autoscaler is gone; else the fields changes wants under the
// desired hold level, at minPath the minimum, on the object as object renders it.
func RenderAutoscaler[S any](policy *v1alpha1.TrafficPolicy, obs *Observation, d Desired, recordCopy string, minPath []string,
	changes func(S, Desired) ([]restore.Change, int32, error), object func(S) *unstructured.Unstructured) (Change, error) {
	st, ok := obs.State.(S)
	if !ok {
		return Change{Status: obs.Status}, nil // nothing of ours on an autoscaler that is gone
	}
	hold := Hold{MinPath: minPath}
	if d.Holds() {
		var err error
		if hold.Changes, hold.Peak, err = changes(st, d); err != nil {
			return Change{Status: obs.Status}, err
		}
	}
	return RenderHold(policy, obs, object(st), hold, d.Holds(), recordCopy)
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
		ch.Status.Autoscaler.Held, ch.Status.Autoscaler.HeldMinReplicas = held, h.Peak
		if v, found, _ := unstructured.NestedInt64(ch.After.Object, h.MinPath...); found {
			ch.Status.Autoscaler.MinReplicas = int32(v)
		}
	}
	return ch, nil
}
