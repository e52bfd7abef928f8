package restore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const policy = "edge/api-gateway"

var limitRPS = []string{"metadata", "annotations", "nginx.ingress.kubernetes.io/limit-rps"}

func ingress(annotations map[string]any) *unstructured.Unstructured {
	obj := map[string]any{
		"apiVersion": "networking.k8s.io/v1",
		"kind":       "Ingress",
		"metadata":   map[string]any{"name": "api", "namespace": "edge"},
		"spec":       map[string]any{"ingressClassName": "nginx"},
	}
	if annotations != nil {
		obj["metadata"].(map[string]any)["annotations"] = annotations
	}
	return &unstructured.Unstructured{Object: obj}
}

func TestRecordsOriginalBeforeFirstChangeAndRestoresIt(t *testing.T) {
	obj := ingress(map[string]any{"nginx.ingress.kubernetes.io/limit-rps": "10", "team": "edge"})
	obj.SetUID("0b5e2c11")
	original := obj.DeepCopy()

	out, err := Reconcile(obj, policy, []Change{{Path: limitRPS, Value: "50"}}, "")
	if err != nil || !out.Changed {
		t.Fatalf("apply: changed=%v err=%v", out.Changed, err)
	}
	if got := obj.GetAnnotations()["nginx.ingress.kubernetes.io/limit-rps"]; got != "50" {
		t.Fatalf("limit-rps = %q, want 50", got)
	}
	want := `{"policy":"edge/api-gateway","kind":"Ingress","uid":"0b5e2c11","fields":[{"path":["metadata","annotations","nginx.ingress.kubernetes.io/limit-rps"],"original":"10","set":"50"}]}`
	if got := obj.GetAnnotations()[Annotation]; got != want {
		t.Fatalf("record =\n%s\nwant\n%s", got, want)
	}

	again, err := Reconcile(obj, policy, []Change{{Path: limitRPS, Value: "50"}}, "")
	if err != nil || again.Changed {
		t.Fatalf("steady state must not change the object: changed=%v err=%v", again.Changed, err)
	}

	back, err := Reconcile(obj, policy, nil, "")
	if err != nil || !back.Changed || back.Record != nil {
		t.Fatalf("restore: %+v err=%v", back, err)
	}
	if !reflect.DeepEqual(obj.Object, original.Object) {
		t.Fatalf("restored object differs:\n%v\nwant\n%v", obj.Object, original.Object)
	}
}

func TestRestoreRemovesAFieldThatWasAbsentAndTheMapItCreated(t *testing.T) {
	obj := ingress(nil)
	original := obj.DeepCopy()
	if _, err := Reconcile(obj, policy, []Change{{Path: limitRPS, Value: "5"}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := Reconcile(obj, policy, nil, ""); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(obj.Object, original.Object) {
		t.Fatalf("restored object differs:\n%v\nwant\n%v", obj.Object, original.Object)
	}
}

func TestAFieldSomeoneElseChangedIsKeptAndNamed(t *testing.T) {
	obj := ingress(map[string]any{"nginx.ingress.kubernetes.io/limit-rps": "10"})
	if _, err := Reconcile(obj, policy, []Change{{Path: limitRPS, Value: "50"}}, ""); err != nil {
		t.Fatal(err)
	}
	ann := obj.GetAnnotations()
	ann["nginx.ingress.kubernetes.io/limit-rps"] = "77"
	obj.SetAnnotations(ann)

	out, err := Reconcile(obj, policy, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := obj.GetAnnotations()["nginx.ingress.kubernetes.io/limit-rps"]; got != "77" {
		t.Fatalf("someone else's value was overwritten: %q", got)
	}
	if !reflect.DeepEqual(out.KeptOthers, []string{"metadata.annotations.nginx.ingress.kubernetes.io/limit-rps"}) {
		t.Fatalf("KeptOthers = %v", out.KeptOthers)
	}
	if _, still := obj.GetAnnotations()[Annotation]; still {
		t.Fatal("the record must be removed once nothing is left to restore")
	}
}

func TestAnotherPolicysRecordIsNotTouched(t *testing.T) {
	obj := ingress(nil)
	if _, err := Reconcile(obj, "edge/first", []Change{{Path: limitRPS, Value: "5"}}, ""); err != nil {
		t.Fatal(err)
	}
	before := obj.DeepCopy()
	_, err := Reconcile(obj, "edge/second", []Change{{Path: limitRPS, Value: "9"}}, "")
	var owned *OwnedByOtherError
	if !errors.As(err, &owned) || owned.Owner != "edge/first" {
		t.Fatalf("err = %v, want OwnedByOtherError(edge/first)", err)
	}
	if !reflect.DeepEqual(obj.Object, before.Object) {
		t.Fatal("the object was changed although another policy owns it")
	}
}

func TestStatusCopyRestoresWhenTheAnnotationWasLost(t *testing.T) {
	obj := ingress(map[string]any{"nginx.ingress.kubernetes.io/limit-rps": "10"})
	out, err := Reconcile(obj, policy, []Change{{Path: limitRPS, Value: "50"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	copyInStatus := out.Record.Encode()
	ann := obj.GetAnnotations()
	delete(ann, Annotation) // a GitOps tool re-applied the object without Floodgate's annotation
	obj.SetAnnotations(ann)

	if _, err := Reconcile(obj, policy, nil, copyInStatus); err != nil {
		t.Fatal(err)
	}
	if got := obj.GetAnnotations()["nginx.ingress.kubernetes.io/limit-rps"]; got != "10" {
		t.Fatalf("limit-rps = %q, want the original 10", got)
	}
}

func TestWholeSubtreeIsRestoredAfterServerDefaulting(t *testing.T) {
	hpa := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "api"},
		"spec":     map[string]any{"minReplicas": int64(2), "maxReplicas": int64(10)},
	}}
	original := hpa.DeepCopy()
	behavior := []string{"spec", "behavior"}
	out, err := Reconcile(hpa, policy, []Change{
		{Path: behavior, Value: map[string]any{"scaleDown": map[string]any{"selectPolicy": "Disabled"}}},
		{Path: []string{"spec", "minReplicas"}, Value: int64(6)},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	// The API server fills in the rest of behavior.
	_ = unstructured.SetNestedField(hpa.Object, "Max", "spec", "behavior", "scaleUp", "selectPolicy")
	if !AdoptStored(hpa, out.Record) {
		t.Fatal("the defaulted subtree must be adopted as Floodgate's value")
	}
	if AdoptStored(hpa, out.Record) {
		t.Fatal("adopting twice must change nothing")
	}
	if _, err := Reconcile(hpa, policy, nil, ""); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(hpa.Object, original.Object) {
		t.Fatalf("restored HPA differs:\n%v\nwant\n%v", hpa.Object, original.Object)
	}
}

func TestCorruptRecordsAreRefused(t *testing.T) {
	for name, text := range map[string]string{
		"not json":        `{`,
		"no policy":       `{"fields":[]}`,
		"bad policy":      `{"policy":"nons","fields":[]}`,
		"empty path":      `{"policy":"a/b","fields":[{"path":[],"set":"1","absent":true}]}`,
		"no set":          `{"policy":"a/b","fields":[{"path":["x"],"absent":true}]}`,
		"both":            `{"policy":"a/b","fields":[{"path":["x"],"original":"1","absent":true,"set":"2"}]}`,
		"neither":         `{"policy":"a/b","fields":[{"path":["x"],"set":"2"}]}`,
		"duplicate":       `{"policy":"a/b","fields":[{"path":["x"],"absent":true,"set":"2"},{"path":["x"],"absent":true,"set":"3"}]}`,
		"unknown field":   `{"policy":"a/b","fields":[],"extra":1}`,
		"trailing data":   `{"policy":"a/b","fields":[]} {}`,
		"null set":        `{"policy":"a/b","fields":[{"path":["x"],"absent":true,"set":null}]}`,
		"empty path item": `{"policy":"a/b","fields":[{"path":[""],"absent":true,"set":"1"}]}`,
	} {
		if _, err := Decode(text); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	obj := ingress(map[string]any{Annotation: "garbage"})
	if _, err := Reconcile(obj, policy, nil, ""); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Reconcile on a corrupt record: err = %v, want ErrCorrupt", err)
	}
}

func FuzzDecodeEncode(f *testing.F) {
	f.Add(`{"policy":"a/b","fields":[{"path":["metadata","annotations","k"],"original":"1","set":"2"}]}`)
	f.Add(`{"policy":"a/b","fields":[{"path":["spec","behavior"],"absent":true,"set":{"b":1,"a":[1,2]}}]}`)
	f.Add(`{}`)
	f.Add(largeRecord().Encode())
	f.Add(CompressedPrefix + "H4sIAAAAAAAC/w==")
	f.Fuzz(func(t *testing.T, text string) {
		rec, err := Decode(text)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		encoded := rec.Encode()
		again, err := Decode(encoded)
		if err != nil {
			t.Fatalf("a record that decoded must re-decode after Encode: %v\n%s", err, encoded)
		}
		if again.Encode() != encoded {
			t.Fatalf("Encode is not stable:\n%s\n%s", encoded, again.Encode())
		}
	})
}

func TestAStaleStatusCopyNeitherBlocksNorReportsAnything(t *testing.T) {
	obj := ingress(map[string]any{"nginx.ingress.kubernetes.io/limit-rps": "10"})
	out, err := Reconcile(obj, policy, []Change{{Path: limitRPS, Value: "50"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	staleCopy := out.Record.Encode()
	if _, err := Reconcile(obj, policy, nil, ""); err != nil { // restored; the copy in status is now stale
		t.Fatal(err)
	}

	again, err := Reconcile(obj, policy, nil, staleCopy)
	if err != nil || again.Changed || len(again.KeptOthers) > 0 {
		t.Fatalf("restoring again from a stale copy: %+v err=%v, want nothing done and nothing reported", again, err)
	}
	rate, err := Reconcile(obj, policy, []Change{{Path: limitRPS, Value: "500"}}, staleCopy)
	if err != nil || len(rate.KeptOthers) > 0 {
		t.Fatalf("a stale copy must not block a new change: %+v err=%v", rate, err)
	}
	if got := obj.GetAnnotations()["nginx.ingress.kubernetes.io/limit-rps"]; got != "500" {
		t.Fatalf("limit-rps = %q, want 500", got)
	}
	if !strings.Contains(obj.GetAnnotations()[Annotation], `"original":"10"`) {
		t.Fatalf("the new record must keep the true original: %s", obj.GetAnnotations()[Annotation])
	}
}

func TestAFieldAlreadyBackAtItsOriginalIsNotReported(t *testing.T) {
	obj := ingress(map[string]any{"nginx.ingress.kubernetes.io/limit-rps": "10"})
	if _, err := Reconcile(obj, policy, []Change{{Path: limitRPS, Value: "50"}}, ""); err != nil {
		t.Fatal(err)
	}
	ann := obj.GetAnnotations()
	ann["nginx.ingress.kubernetes.io/limit-rps"] = "10" // someone put it back by hand
	obj.SetAnnotations(ann)
	out, err := Reconcile(obj, policy, nil, "")
	if err != nil || len(out.KeptOthers) > 0 || out.Record != nil {
		t.Fatalf("got %+v err=%v", out, err)
	}
}

func TestARecordCopiedOntoAnotherObjectDoesNotDescribeIt(t *testing.T) {
	// KEDA copies a ScaledObject's annotations onto the HPA it generates: the restore record on
	// the HPA is the ScaledObject's, not the HPA's.
	scaledObject := ingress(nil)
	scaledObject.SetUID("so-1")
	if _, err := Reconcile(scaledObject, policy, []Change{{Path: limitRPS, Value: "50"}}, ""); err != nil {
		t.Fatal(err)
	}
	rec, err := Read(scaledObject)
	if err != nil || !rec.Describes(scaledObject) {
		t.Fatalf("the record describes the object it was written on: %v %v", rec, err)
	}
	generated := ingress(map[string]any{Annotation: scaledObject.GetAnnotations()[Annotation]})
	generated.SetUID("hpa-2")
	if rec, err := Read(generated); err != nil || rec.Describes(generated) {
		t.Fatalf("a copied record must not describe the object it was copied onto: %v %v", rec, err)
	}
}

// largeRecord is the record of a route of many rules: more than CompressAbove bytes of JSON.
func largeRecord() *Record {
	rules := make([]any, 0, 400)
	for i := range 400 {
		rules = append(rules, map[string]any{"name": fmt.Sprintf("rule-%d", i),
			"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": fmt.Sprintf("/api/v%d/users", i)}}},
			"backendRefs": []any{map[string]any{"name": "api", "port": 80, "weight": 1}}})
	}
	original, _ := json.Marshal(rules)
	return &Record{Policy: "edge/api", Kind: "HTTPRoute", UID: "u-1", Fields: []Field{
		{Path: []string{"spec", "rules"}, Original: original, Set: original},
	}}
}

func TestALargeRecordIsStoredCompressedAndReadBackExactly(t *testing.T) {
	rec := largeRecord()
	plain, _ := json.Marshal(rec)
	encoded := rec.Encode()
	if !strings.HasPrefix(encoded, CompressedPrefix) {
		t.Fatalf("a record of %d bytes is stored uncompressed", len(plain))
	}
	if len(encoded)*10 > len(plain) {
		t.Errorf("the compressed record is %d bytes for %d of JSON: expected at least 10x smaller", len(encoded), len(plain))
	}
	if again := rec.Encode(); again != encoded {
		t.Fatal("Encode of a compressed record is not stable")
	}
	back, err := Decode(encoded)
	if err != nil {
		t.Fatal(err)
	}
	if back.Encode() != encoded || len(back.Fields) != 1 || !bytes.Equal(canonical(back.Fields[0].Original), canonical(rec.Fields[0].Original)) {
		t.Fatal("the record read back differs")
	}
	small := &Record{Policy: "edge/api", Fields: []Field{{Path: []string{"metadata", "annotations", "k"}, Original: json.RawMessage(`"1"`), Set: json.RawMessage(`"2"`)}}}
	if strings.HasPrefix(small.Encode(), CompressedPrefix) {
		t.Error("a small record is compressed: it stays readable JSON")
	}
	for name, text := range map[string]string{
		"not base64":          CompressedPrefix + "%%%",
		"not gzip":            CompressedPrefix + "aGVsbG8=",
		"compressed twice":    CompressedPrefix + compress([]byte(encoded)),
		"expands too far":     CompressedPrefix + compress(bytes.Repeat([]byte(" "), MaxRecordBytes+10)),
		"truncated":           encoded[:len(encoded)/2],
		"expands to non-JSON": CompressedPrefix + compress([]byte("not json")),
	} {
		if _, err := Decode(text); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Decode = %v, want ErrCorrupt", name, err)
		}
	}
}
