package ingressnginx

import (
	"context"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestARehearsalCopiesTheServicesAnIngressRoutesTo(t *testing.T) {
	ing := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "api", "namespace": "edge"},
		"spec": map[string]any{
			"defaultBackend": map[string]any{"service": map[string]any{"name": "fallback"}},
			"rules": []any{map[string]any{"http": map[string]any{"paths": []any{
				map[string]any{"path": "/", "backend": map[string]any{"service": map[string]any{"name": "api"}}},
				map[string]any{"path": "/static", "backend": map[string]any{"resource": map[string]any{"kind": "Bucket", "name": "b"}}},
			}}}},
		},
	}}
	var copied []string
	copyObject := func(_ context.Context, gvk schema.GroupVersionKind, ns, name string) (*unstructured.Unstructured, error) {
		copied = append(copied, gvk.Kind+" "+ns+"/"+name)
		return nil, nil
	}
	if err := (&Provider{}).CopyNeighbours(context.Background(), ing, copyObject); err != nil {
		t.Fatal(err)
	}
	if want := []string{"Service edge/fallback", "Service edge/api"}; !reflect.DeepEqual(copied, want) {
		t.Fatalf("copied %v, want %v", copied, want)
	}
}
