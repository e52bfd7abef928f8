// Package patch builds the merge patches Floodgate writes to objects users also write.
//
// Floodgate reads objects from a cache that strips what no code reads (managedFields, and
// kubectl's last-applied-configuration annotation). A JSON merge patch computed between two
// such copies sets metadata.annotations to null when the copy's last annotation goes (the
// restore record, typically): the API server then drops every annotation, the stripped ones
// included, and `kubectl apply` can no longer prune. The patches here never do that.
package patch

import (
	"bytes"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// From is a JSON merge patch from before to the object patched, with an optimistic lock (the
// patch carries before's resourceVersion). It never sets metadata.annotations or metadata.labels
// to null: a map emptied of what before held becomes a null for each key before held, so keys
// the reader never saw are kept.
func From(before client.Object) client.Patch {
	return keyed{before: before, merge: client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})}
}

type keyed struct {
	before client.Object
	merge  client.Patch
}

func (p keyed) Type() types.PatchType { return types.MergePatchType }

func (p keyed) Data(obj client.Object) ([]byte, error) {
	data, err := p.merge.Data(obj)
	if err != nil {
		return nil, err
	}
	return KeepUnseenKeys(data, map[string]map[string]string{"annotations": p.before.GetAnnotations(), "labels": p.before.GetLabels()})
}

// KeepUnseenKeys rewrites a merge patch that sets metadata.<field> to null (for each field of
// seen: annotations, labels) into one that removes only the keys seen there; a field seen
// empty is left out of the patch.
func KeepUnseenKeys(data []byte, seen map[string]map[string]string) ([]byte, error) {
	if !bytes.Contains(data, []byte("null")) {
		return data, nil
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers pass through exactly
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("reading a merge patch: %w", err)
	}
	meta, _ := doc["metadata"].(map[string]any)
	changed := false
	for field, keys := range seen {
		if v, present := meta[field]; !present || v != nil {
			continue
		}
		changed = true
		if len(keys) == 0 {
			delete(meta, field)
			continue
		}
		removed := make(map[string]any, len(keys))
		for k := range keys {
			removed[k] = nil
		}
		meta[field] = removed
	}
	if !changed {
		return data, nil
	}
	return json.Marshal(doc)
}
