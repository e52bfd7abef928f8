package provider

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Fields are what a drill's timeline prints of an object, by name: a responder's view of the
// fields a lever moves, each in one line.
type Fields map[string]string

// Put sets name to the compact form of the field at path of o, when o has that field.
func (f Fields) Put(o *unstructured.Unstructured, name string, path ...string) {
	if v, found, _ := unstructured.NestedFieldNoCopy(o.Object, path...); found {
		f[name] = CompactJSON(v)
	}
}

// CompactJSON is a value in one line: a string as it is, anything else as compact JSON.
func CompactJSON(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// CopyFunc copies one object of a live cluster into a rehearsal (read only) and returns it; nil
// when the cluster does not have it.
type CopyFunc func(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error)
