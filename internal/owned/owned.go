// Package owned creates and keeps in step the companion objects Floodgate owns (canary Ingress,
// shed Service and EndpointSlice): each carries an ownerReference to its policy and the policy
// label, is written only when it differs, and is never adopted when someone else made it.
package owned

import (
	"context"
	"fmt"
	"hash/fnv"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// PolicyLabel names the policy that owns a companion object.
const PolicyLabel = "traffic.floodgate.dev/policy"

// NotOursError says an object with a companion's name exists and Floodgate did not create it.
type NotOursError struct{ Kind, Name string }

func (e *NotOursError) Error() string {
	return fmt.Sprintf("%s %s exists and was not created by this policy", e.Kind, e.Name)
}

// Stamp gives a companion object its policy label and controller ownerReference.
func Stamp(obj client.Object, policy *v1alpha1.TrafficPolicy) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[PolicyLabel] = policy.Name
	obj.SetLabels(labels)
	obj.SetOwnerReferences([]metav1.OwnerReference{{
		APIVersion:         v1alpha1.GroupVersion.String(),
		Kind:               "TrafficPolicy",
		Name:               policy.Name,
		UID:                policy.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}})
}

// IsOurs reports whether obj was created by the policy.
func IsOurs(obj client.Object, policy *v1alpha1.TrafficPolicy) bool {
	if obj.GetLabels()[PolicyLabel] != policy.Name {
		return false
	}
	for _, ref := range obj.GetOwnerReferences() {
		if ref.UID == policy.UID && ptr.Deref(ref.Controller, false) {
			return true
		}
	}
	return false
}

// Ensure creates desired, or patches the existing object when sync changes it. sync copies the
// fields Floodgate manages from desired into existing. It writes nothing when nothing differs.
func Ensure[T client.Object](ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, desired, existing T, sync func(existing, desired T)) (changed bool, err error) {
	Stamp(desired, policy)
	err = c.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	if apierrors.IsNotFound(err) {
		if err := c.Create(ctx, desired); err != nil {
			return false, fmt.Errorf("creating %s: %w", desired.GetName(), err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", desired.GetName(), err)
	}
	if !IsOurs(existing, policy) {
		return false, &NotOursError{Kind: fmt.Sprintf("%T", existing), Name: existing.GetName()}
	}
	before := existing.DeepCopyObject().(T)
	sync(existing, desired)
	existing.SetLabels(desired.GetLabels())
	existing.SetOwnerReferences(desired.GetOwnerReferences())
	if equality.Semantic.DeepEqual(before, existing) {
		return false, nil
	}
	if err := c.Patch(ctx, existing, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, fmt.Errorf("updating %s: %w", existing.GetName(), err)
	}
	return true, nil
}

// Delete removes obj when it exists and belongs to the policy. envtest and some clusters run no
// garbage collector, so companions are deleted explicitly rather than left to ownerReferences.
func Delete(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, obj client.Object) (deleted bool, err error) {
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if !IsOurs(obj, policy) {
		return false, nil
	}
	if err := c.Delete(ctx, obj, client.Preconditions{UID: ptr.To(obj.GetUID())}); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return true, nil
}

// Name builds a companion's name from parts, kept within max characters with a stable hash
// suffix when it must be shortened.
func Name(max int, parts ...string) string {
	name := ""
	for i, p := range parts {
		if i > 0 {
			name += "-"
		}
		name += p
	}
	if len(name) <= max {
		return name
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	suffix := fmt.Sprintf("-%08x", h.Sum32())
	cut := name[:max-len(suffix)]
	for len(cut) > 0 && (cut[len(cut)-1] == '-' || cut[len(cut)-1] == '.') {
		cut = cut[:len(cut)-1]
	}
	return cut + suffix
}
