package controllers

import (
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// writtenVersions remembers, per policy, the resourceVersion of its last write by this manager,
// so a pass reads the policy from the cache and goes to the API server only when the cache has
// not yet seen that write.
type writtenVersions struct {
	mu       sync.Mutex
	versions map[types.NamespacedName]uint64
}

// note records the version a write returned.
func (w *writtenVersions) note(obj client.Object) {
	v, err := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.versions == nil {
		w.versions = map[types.NamespacedName]uint64{}
	}
	if err != nil {
		v = 0 // an opaque version: newerThan compares nothing and reads the API server
	}
	w.versions[client.ObjectKeyFromObject(obj)] = v
}

// newerThan says whether this manager wrote a newer version of obj than the one in hand (or
// cannot tell, with versions that are not numbers).
func (w *writtenVersions) newerThan(obj client.Object) bool {
	w.mu.Lock()
	written, ok := w.versions[client.ObjectKeyFromObject(obj)]
	w.mu.Unlock()
	if !ok {
		return false
	}
	have, err := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	return err != nil || written == 0 || have < written
}

// readThrough makes the next pass of the policy read it from the API server.
func (w *writtenVersions) readThrough(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.versions == nil {
		w.versions = map[types.NamespacedName]uint64{}
	}
	w.versions[key] = 0
}

func (w *writtenVersions) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.versions, key)
}
