package provider

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/patch"
	"floodgate.dev/floodgate/internal/restore"
)

// Write applies a rendered change: companions first (a canary is in step before anything routes
// differently), then the edit of the object itself (the restore record and the change in one
// patch, with a resourceVersion precondition), then the companions that must go. Nothing is
// written where nothing differs. It returns the object's status as written.
func Write(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, ch Change) (Status, error) {
	for _, comp := range ch.Ensure {
		if _, err := owned.Ensure(ctx, c, policy, comp.Desired, empty(comp.Desired), comp.Sync); err != nil {
			return ch.Status, fmt.Errorf("%s %s: %w", kindOf(c, comp.Desired), comp.Desired.GetName(), err)
		}
	}
	st, err := patchEdit(ctx, c, ch)
	if err != nil {
		return st, err
	}
	for _, obj := range ch.Remove {
		if _, err := owned.Delete(ctx, c, policy, obj); err != nil && !errors.As(err, new(*owned.NotOursError)) {
			// An object of that name that is not ours is not ours to remove (Observe warns of it).
			return st, fmt.Errorf("removing %s %s: %w", kindOf(c, obj), obj.GetName(), err)
		}
	}
	return st, nil
}

// patchEdit writes the edit of the object itself. The API server may default parts of what was
// set (an HPA's behavior): the stored form is then recorded as Floodgate's value, so restore
// recognises it, and the status copy of the record says the same.
func patchEdit(ctx context.Context, c client.Client, ch Change) (Status, error) {
	st := ch.Status
	if ch.After == nil || equality.Semantic.DeepEqual(ch.Before.Object, ch.After.Object) {
		return st, nil
	}
	after := ch.After.DeepCopy()
	if err := c.Patch(ctx, after, patch.From(ch.Before)); err != nil {
		return st, fmt.Errorf("patching %s %s: %w", after.GetKind(), after.GetName(), err)
	}
	rec, err := restore.Read(after)
	if err != nil || rec == nil {
		return st, err
	}
	if written := after.DeepCopy(); restore.AdoptStored(after, rec) {
		if err := c.Patch(ctx, after, patch.From(written)); err != nil {
			return st, fmt.Errorf("recording the stored form on %s %s: %w", after.GetKind(), after.GetName(), err)
		}
		st.RestoreRecord = rec.Encode()
	}
	return st, nil
}

// Preview returns what Write would do, without writing: each object's user-owned parts before
// and after.
func Preview(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, ch Change) ([]ObjectChange, error) {
	var out []ObjectChange
	if ch.After != nil {
		out = append(out, ObjectChange{Kind: ch.After.GetKind(), Name: ch.After.GetName(),
			Before: UserView(ch.Before.Object), After: UserView(ch.After.Object)})
	}
	for _, comp := range ch.Ensure {
		before, err := existingView(ctx, c, comp.Desired)
		if err != nil {
			return nil, err
		}
		desired := comp.Desired.DeepCopyObject().(client.Object)
		owned.Stamp(desired, policy)
		after, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
		if err != nil {
			return nil, err
		}
		out = append(out, ObjectChange{Kind: kindOf(c, desired), Name: desired.GetName(), Before: before, After: UserView(after)})
	}
	for _, obj := range ch.Remove {
		before, err := existingView(ctx, c, obj)
		if err != nil {
			return nil, err
		}
		if before != nil {
			out = append(out, ObjectChange{Kind: kindOf(c, obj), Name: obj.GetName(), Before: before})
		}
	}
	return out, nil
}

// existingView is the user-owned parts of an object as it is now (nil when it does not exist).
func existingView(ctx context.Context, c client.Client, obj client.Object) (map[string]any, error) {
	existing := empty(obj)
	switch err := c.Get(ctx, client.ObjectKeyFromObject(obj), existing); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s %s: %w", kindOf(c, obj), obj.GetName(), err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(existing)
	if err != nil {
		return nil, err
	}
	return UserView(u), nil
}

// SyncSpec is a Companion's Sync for an object whose spec Floodgate manages whole (a Traefik
// Middleware, an Envoy Gateway HTTPRouteFilter or BackendTrafficPolicy, as unstructured objects):
// the existing spec becomes the wanted one.
func SyncSpec(existing, desired client.Object) {
	e, d := existing.(*unstructured.Unstructured), desired.(*unstructured.Unstructured)
	e.Object["spec"] = runtime.DeepCopyJSONValue(d.Object["spec"])
}

// empty is a new object of obj's type, named as obj is.
func empty(obj client.Object) client.Object {
	var out client.Object
	if u, ok := obj.(*unstructured.Unstructured); ok {
		e := &unstructured.Unstructured{}
		e.SetGroupVersionKind(u.GroupVersionKind())
		out = e
	} else {
		out = reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
	}
	out.SetNamespace(obj.GetNamespace())
	out.SetName(obj.GetName())
	return out
}

func kindOf(c client.Client, obj client.Object) string {
	if gvk, err := apiutil.GVKForObject(obj, c.Scheme()); err == nil {
		return gvk.Kind
	}
	return fmt.Sprintf("%T", obj)
}
