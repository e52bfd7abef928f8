package restore

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Change is a value Floodgate wants a field of an object to hold.
type Change struct {
	// Path is the field's place in the object, one key per level.
	Path []string
	// Value is the wanted value, in unstructured form (string, int64, bool, map, slice).
	Value any
}

// OwnedByOtherError says the object carries another policy's record: this policy must change
// nothing on it.
type OwnedByOtherError struct{ Owner string }

func (e *OwnedByOtherError) Error() string {
	return fmt.Sprintf("already changed by policy %s", e.Owner)
}

// Outcome is what Reconcile did to the object in memory.
type Outcome struct {
	// Changed is true when the object differs from what was read and must be written.
	Changed bool
	// Record is the record now on the object; nil when it was removed (or there was none).
	Record *Record
	// KeptOthers names fields someone else changed after Floodgate: they keep the other value.
	KeptOthers []string
}

// Reconcile edits obj in memory so that the wanted changes hold and every recorded field that is
// no longer wanted gets its original back. It records a field's original before its first change,
// in the same object (so the record and the change are written together). fallback is the copy
// of the record kept in the policy's status, used when the annotation is missing.
//
// A field that no longer holds Floodgate's value was changed by someone else: it is kept as it is
// and named in KeptOthers, whether or not it is still wanted.
func Reconcile(obj *unstructured.Unstructured, policy string, wanted []Change, fallback string) (Outcome, error) {
	rec, err := current(obj, policy, fallback)
	if err != nil {
		return Outcome{}, err
	}
	if rec == nil {
		if len(wanted) == 0 {
			return Outcome{}, nil
		}
		rec = &Record{Policy: policy, Kind: obj.GetKind(), UID: obj.GetUID()}
	}
	before := obj.DeepCopy()
	out := Outcome{}

	want := map[string]Change{}
	for _, c := range wanted {
		want[strings.Join(c.Path, ".")] = c
	}

	kept := rec.Fields[:0:0]
	for _, f := range rec.Fields {
		cur, found, err := unstructured.NestedFieldNoCopy(obj.Object, f.Path...)
		if err != nil {
			return Outcome{}, fmt.Errorf("reading %s: %w", f.PathString(), err)
		}
		ours := found && sameJSON(cur, f.Set)
		c, stillWanted := want[f.PathString()]
		delete(want, f.PathString())
		switch {
		case !ours && !stillWanted && atOriginal(cur, found, f):
			// Already back at its original (restored by an earlier pass, or by hand): nothing to do.
		case !ours:
			// Someone else changed it: keep their value. While it is still wanted the field stays
			// in the record (its original is still the one to put back if they revert).
			out.KeptOthers = append(out.KeptOthers, f.PathString())
			if stillWanted {
				kept = append(kept, f)
			}
		case stillWanted:
			if !sameJSON(c.Value, f.Set) {
				if err := unstructured.SetNestedField(obj.Object, c.Value, c.Path...); err != nil {
					return Outcome{}, fmt.Errorf("setting %s: %w", f.PathString(), err)
				}
				f.Set = toJSON(c.Value)
			}
			kept = append(kept, f)
		default:
			if err := putBack(obj, f); err != nil {
				return Outcome{}, err
			}
		}
	}
	for _, c := range wanted {
		if _, pending := want[strings.Join(c.Path, ".")]; !pending {
			continue
		}
		f := Field{Path: c.Path, Set: toJSON(c.Value)}
		cur, found, err := unstructured.NestedFieldNoCopy(obj.Object, c.Path...)
		if err != nil {
			return Outcome{}, fmt.Errorf("reading %s: %w", f.PathString(), err)
		}
		if found {
			f.Original = toJSON(cur)
		} else {
			f.Absent = true
		}
		if err := unstructured.SetNestedField(obj.Object, c.Value, c.Path...); err != nil {
			return Outcome{}, fmt.Errorf("setting %s: %w", f.PathString(), err)
		}
		kept = append(kept, f)
	}
	rec.Fields = kept

	if len(rec.Fields) == 0 {
		removeAnnotation(obj)
	} else {
		setAnnotation(obj, rec.Encode())
		out.Record = rec
	}
	out.Changed = !equalObjects(before, obj)
	return out, nil
}

// AdoptStored makes the record's Set values those the API server stored, for the given paths,
// after a write: a server that defaults a subtree (an HPA's behavior) stores more than was sent,
// and restore must recognise the stored value as Floodgate's. It reports whether the record
// changed (and so must be written again).
func AdoptStored(obj *unstructured.Unstructured, rec *Record) bool {
	if rec == nil {
		return false
	}
	changed := false
	for i, f := range rec.Fields {
		cur, found, err := unstructured.NestedFieldNoCopy(obj.Object, f.Path...)
		if err != nil || !found || sameJSON(cur, f.Set) {
			continue
		}
		rec.Fields[i].Set = toJSON(cur)
		changed = true
	}
	if changed {
		setAnnotation(obj, rec.Encode())
	}
	return changed
}

// Read returns the record on obj (nil when there is none). It reads only the annotation.
func Read(obj metav1.Object) (*Record, error) {
	text, ok := obj.GetAnnotations()[Annotation]
	if !ok {
		return nil, nil
	}
	return Decode(text)
}

func current(obj *unstructured.Unstructured, policy, fallback string) (*Record, error) {
	rec, err := Read(obj)
	if err != nil {
		return nil, err
	}
	if rec == nil && fallback != "" {
		if rec, err = Decode(fallback); err != nil {
			return nil, fmt.Errorf("status copy: %w", err)
		}
		// The copy stands in for a record someone removed from the object, while Floodgate's
		// values are still there. When none is, it is stale (the restore already happened) or
		// everything was reverted: there is nothing of Floodgate's left to restore.
		if !holdsAnySetValue(obj, rec) {
			rec = nil
		}
	}
	if rec != nil && rec.Policy != policy {
		return nil, &OwnedByOtherError{Owner: rec.Policy}
	}
	return rec, nil
}

func atOriginal(cur any, found bool, f Field) bool {
	if f.Absent {
		return !found
	}
	return found && sameJSON(cur, f.Original)
}

func holdsAnySetValue(obj *unstructured.Unstructured, rec *Record) bool {
	for _, f := range rec.Fields {
		if cur, found, err := unstructured.NestedFieldNoCopy(obj.Object, f.Path...); err == nil && found && sameJSON(cur, f.Set) {
			return true
		}
	}
	return false
}

func putBack(obj *unstructured.Unstructured, f Field) error {
	if f.Absent {
		unstructured.RemoveNestedField(obj.Object, f.Path...)
		pruneEmptyParents(obj.Object, f.Path)
		return nil
	}
	v, err := fromJSON(f.Original)
	if err != nil {
		return fmt.Errorf("original of %s: %w", f.PathString(), err)
	}
	if err := unstructured.SetNestedField(obj.Object, v, f.Path...); err != nil {
		return fmt.Errorf("restoring %s: %w", f.PathString(), err)
	}
	return nil
}

// pruneEmptyParents removes maps that removing a field left empty (an annotations map Floodgate
// created), so the object reads back exactly as before.
func pruneEmptyParents(obj map[string]any, path []string) {
	for n := len(path) - 1; n > 0; n-- {
		parent, found, _ := unstructured.NestedMap(obj, path[:n]...)
		if !found || len(parent) > 0 {
			return
		}
		unstructured.RemoveNestedField(obj, path[:n]...)
	}
}

// Put writes the record into obj's annotation (in memory): a provider that keeps its own fields
// in a record (an HTTPRoute's atomic rules) writes it the way Reconcile does.
func Put(obj *unstructured.Unstructured, rec *Record) { setAnnotation(obj, rec.Encode()) }

// Drop removes the record's annotation from obj (in memory), and the annotations map it leaves
// empty.
func Drop(obj *unstructured.Unstructured) { removeAnnotation(obj) }

func setAnnotation(obj *unstructured.Unstructured, value string) {
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[Annotation] = value
	obj.SetAnnotations(ann)
}

func removeAnnotation(obj *unstructured.Unstructured) {
	ann := obj.GetAnnotations()
	if _, ok := ann[Annotation]; !ok {
		return
	}
	delete(ann, Annotation)
	if len(ann) == 0 {
		ann = nil
	}
	obj.SetAnnotations(ann)
}

func equalObjects(a, b *unstructured.Unstructured) bool {
	return sameJSON(a.Object, toJSON(b.Object))
}

// FromTyped converts a typed object (as read from the cache, without its TypeMeta) into the
// unstructured form Reconcile edits, with its apiVersion and kind set for the write.
func FromTyped(obj runtime.Object, gvk schema.GroupVersionKind) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("converting %s to unstructured: %w", gvk.Kind, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	return u, nil
}
