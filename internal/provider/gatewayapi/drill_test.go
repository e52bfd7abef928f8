package gatewayapi

import (
	"context"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

func route(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	data, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil { // numbers as the API client reads them (int64)
		t.Fatal(err)
	}
	return u
}

func TestATimelinePrintsEachRuleInOneLineAndTheGatewaysVerdict(t *testing.T) {
	const rules = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: edge, generation: 3}
spec:
  parentRefs: [{name: edge}]
  rules:
  - name: floodgate-api
    matches: [{path: {type: PathPrefix, value: /}, headers: [{type: RegularExpression, name: CF-IPCountry, value: "^(AU)$"}]}]
    backendRefs: [{name: api, port: 80, weight: 90}, {name: floodgate-shed-api, port: 80, weight: 10}]
  - matches: [{path: {type: Exact, value: /health}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: status.example.com}}]
`
	for _, tc := range []struct {
		name   string
		status string
		want   map[string]string
	}{
		{"no gateway has spoken", "", nil},
		{"accepted at this generation", `
status: {parents: [{conditions: [{type: Accepted, status: "True", observedGeneration: 3}, {type: ResolvedRefs, status: "True", observedGeneration: 3}]}]}`,
			map[string]string{"gateway": "accepted (generation 3)"}},
		{"not yet read at this generation", `
status: {parents: [{conditions: [{type: Accepted, status: "True", observedGeneration: 2}]}]}`,
			map[string]string{"gateway": "pending (generation 3)"}},
		{"rejected", `
status: {parents: [{conditions: [{type: Accepted, status: "False", observedGeneration: 3, message: "no such listener"}]}]}`,
			map[string]string{"gateway": "rejected (no such listener)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := map[string]string{
				"rule 0": "floodgate-api: / [CF-IPCountry ~ ^(AU)$] → api×90 floodgate-shed-api×10",
				"rule 1": "=/health → 302 to status.example.com",
			}
			for k, v := range tc.want {
				want[k] = v
			}
			got := (&Provider{}).TimelineFields(route(t, rules+tc.status))
			if !reflect.DeepEqual(map[string]string(got), want) {
				t.Fatalf("TimelineFields =\n  %v\nwant\n  %v", got, want)
			}
		})
	}
}

func TestARehearsalCopiesARoutesServicesGatewaysAndTheirClasses(t *testing.T) {
	r := route(t, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: edge}
spec:
  parentRefs: [{name: edge}, {name: shared, namespace: infra}, {kind: Service, name: mesh}]
  rules:
  - backendRefs: [{name: api, port: 80}, {name: other, namespace: backends, port: 80}, {kind: Bucket, group: example.com, name: b}]
`)
	var copied []string
	copyObject := func(_ context.Context, gvk schema.GroupVersionKind, ns, name string) (*unstructured.Unstructured, error) {
		copied = append(copied, gvk.Kind+" "+ns+"/"+name)
		if gvk.Kind != "Gateway" {
			return &unstructured.Unstructured{}, nil
		}
		gw := &unstructured.Unstructured{Object: map[string]any{}}
		_ = unstructured.SetNestedField(gw.Object, "class-of-"+name, "spec", "gatewayClassName")
		return gw, nil
	}
	if err := (&Provider{}).CopyNeighbours(context.Background(), r, copyObject); err != nil {
		t.Fatal(err)
	}
	want := []string{"Service edge/api", "Service backends/other", "Gateway edge/edge", "GatewayClass /class-of-edge", "Gateway infra/shared", "GatewayClass /class-of-shared"}
	if !reflect.DeepEqual(copied, want) {
		t.Fatalf("copied %v, want %v", copied, want)
	}
}
