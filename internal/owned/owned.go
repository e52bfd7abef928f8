// Package owned creates and keeps in step the companion objects Floodgate owns (canary Ingress,
// shed Service and EndpointSlice): each carries a controller ownerReference to its policy and the
// policy label, is written only when it differs, and is never adopted when someone else made it.
//
// Ownership is the controller ownerReference's UID: the label is for selection only. A companion
// whose label was removed is still ours (found, updated, removed); an object that carries the
// label, or a companion's name, without that ownerReference is not ours (reported, untouched).
package owned

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/index"
	"floodgate.dev/floodgate/internal/patch"
)

// PolicyLabel names the policy that owns a companion object (for selection only).
const PolicyLabel = "traffic.floodgate.dev/policy"

// IndexController is the name of a field index over the UID of an object's controller
// ownerReference: what lists a policy's companions, with or without their label.
const IndexController = ".metadata.controllerUID"

// ControllerUID is the IndexController index function.
func ControllerUID(obj client.Object) []string {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return []string{string(ref.UID)}
	}
	return nil
}

// List lists the objects of a namespace the policy controls, through the IndexController index.
func List(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, list client.ObjectList) error {
	return index.List(ctx, c, list, IndexController, string(policy.UID), ControllerUID, client.InNamespace(policy.Namespace))
}

// NotOursError says an object with a companion's name exists and is not controlled by this
// policy: Floodgate neither adopts, updates nor deletes it.
type NotOursError struct{ Kind, Name string }

func (e *NotOursError) Error() string {
	return fmt.Sprintf("%s %s exists and is not controlled by this policy (no controller ownerReference to its UID); Floodgate leaves it alone: remove it by hand if it is a leftover", e.Kind, e.Name)
}

// kindOf names an object's kind for messages.
func kindOf(obj client.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	t := fmt.Sprintf("%T", obj)
	if i := strings.LastIndex(t, "."); i >= 0 {
		t = t[i+1:]
	}
	return t
}

// Stamp gives a companion object its policy label and controller ownerReference.
func Stamp(obj client.Object, policy *v1alpha1.TrafficPolicy) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[PolicyLabel] = LabelValue(policy.Name)
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

// IsOurs reports whether obj is controlled by the policy: its controller ownerReference names
// the policy's UID. The label plays no part.
func IsOurs(obj client.Object, policy *v1alpha1.TrafficPolicy) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == policy.UID && ref.Kind == "TrafficPolicy"
}

// Ensure creates desired, or patches the existing object when sync changes it. sync copies the
// fields Floodgate manages from desired into existing. It writes nothing when nothing differs.
func Ensure[T client.Object](ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, desired, existing T, sync func(existing, desired T)) (changed bool, err error) {
	return EnsureLive(ctx, c, nil, policy, desired, existing, sync)
}

// EnsureLive is Ensure for a kind the cache holds only when selected by label: an object of
// desired's name the cache does not hold (its label was removed) is read from live, the API
// server, and then treated as Ensure treats any.
func EnsureLive[T client.Object](ctx context.Context, c client.Client, live client.Reader, policy *v1alpha1.TrafficPolicy, desired, existing T, sync func(existing, desired T)) (changed bool, err error) {
	Stamp(desired, policy)
	err = c.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	if apierrors.IsNotFound(err) {
		cerr := c.Create(ctx, desired)
		if cerr == nil {
			return true, nil
		}
		if !apierrors.IsAlreadyExists(cerr) || live == nil {
			return false, fmt.Errorf("creating %s: %w", desired.GetName(), cerr)
		}
		err = live.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", desired.GetName(), err)
	}
	if !IsOurs(existing, policy) {
		return false, &NotOursError{Kind: kindOf(existing), Name: existing.GetName()}
	}
	before := existing.DeepCopyObject().(T)
	sync(existing, desired)
	existing.SetLabels(desired.GetLabels())
	existing.SetOwnerReferences(desired.GetOwnerReferences())
	if equality.Semantic.DeepEqual(before, existing) {
		return false, nil
	}
	if err := c.Patch(ctx, existing, patch.From(before)); err != nil {
		return false, fmt.Errorf("updating %s: %w", existing.GetName(), err)
	}
	return true, nil
}

// Delete removes obj when it exists and belongs to the policy. envtest and some clusters run no
// garbage collector, so companions are deleted explicitly rather than left to ownerReferences.
// An object of that name that is not the policy's is left alone and reported (NotOursError).
func Delete(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, obj client.Object) (deleted bool, err error) {
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if !IsOurs(obj, policy) {
		return false, &NotOursError{Kind: kindOf(obj), Name: obj.GetName()}
	}
	if err := c.Delete(ctx, obj, client.Preconditions{UID: ptr.To(obj.GetUID())}); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return true, nil
}

// LabelValue is a policy name as a label value: the name itself when it fits a label value's 63
// characters, else shortened with a stable hash of the whole name (a policy name may be 253).
func LabelValue(name string) string {
	if len(name) <= 63 {
		return name
	}
	return shortened(name, 63)
}

// DNSLabel builds a name that must be a DNS label (a Service's: at most 63 characters, no dots)
// from a prefix and a policy name. A name that is already a DNS label is used as it is; any
// other (dots, or too long) gets its dots turned into dashes and a hash of the whole name, so two
// policies never derive the same name ("a.b" and "a-b" do not collide).
func DNSLabel(prefix, name string) string {
	plain := prefix + "-" + name
	if !strings.Contains(name, ".") {
		if len(plain) <= 63 {
			return plain
		}
		return shortened(plain, 63)
	}
	suffix := "-" + hash(name)
	cut := strings.ReplaceAll(plain, ".", "-")
	if len(cut) > 63-len(suffix) {
		cut = cut[:63-len(suffix)]
	}
	return strings.TrimRight(cut, "-") + suffix
}

// hash is a short stable hash of s.
func hash(s string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// shortened cuts s to max characters, ending with a hash of the whole of s.
func shortened(s string, max int) string {
	suffix := "-" + hash(s)
	cut := s[:max-len(suffix)]
	for len(cut) > 0 && (cut[len(cut)-1] == '-' || cut[len(cut)-1] == '.') {
		cut = cut[:len(cut)-1]
	}
	return cut + suffix
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
	return shortened(name, max)
}
