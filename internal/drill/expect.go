package drill

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/internal/provider"
)

// lookTimeout bounds one read of an expectation, whatever the expectation's own timeout.
const lookTimeout = 10 * time.Second

func (r *runner) expect(ctx context.Context, e *Expect) (time.Duration, string) {
	timeout := 10 * time.Second
	if e.Timeout != nil {
		timeout = e.Timeout.Duration
	}
	start := time.Now()
	failure := ""
	err := wait.PollUntilContextTimeout(ctx, 25*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		// Each look reads with the drill's context, not the poll's: a read still in flight
		// when the timeout strikes must not replace the mismatch it was about to confirm.
		lookCtx, cancel := context.WithTimeout(ctx, lookTimeout)
		defer cancel()
		failure = r.check(lookCtx, e)
		return failure == "", nil
	})
	switch {
	case err == nil:
		return time.Since(start), ""
	case wait.Interrupted(err) && failure != "":
		return time.Since(start), fmt.Sprintf("after %s: %s", timeout, failure)
	}
	return time.Since(start), err.Error()
}

func (r *runner) check(ctx context.Context, e *Expect) string {
	obj := r.object(e.Ref)
	err := r.env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	switch {
	case e.Absent && apierrors.IsNotFound(err):
		return ""
	case e.Absent && err == nil:
		return fmt.Sprintf("%s %s still exists", e.Kind, refKey(e.Ref))
	case err != nil:
		return fmt.Sprintf("reading %s %s: %v", e.Kind, refKey(e.Ref), err)
	}
	for _, path := range slices.Sorted(maps.Keys(e.Fields)) {
		want := e.Fields[path]
		got, found := field(obj.Object, path)
		if want == nil {
			if found {
				return fmt.Sprintf("%s is %v, want it absent", path, got)
			}
			continue
		}
		if !found {
			return fmt.Sprintf("%s is absent, want %v", path, want)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Sprintf("%s is %v, want %v", path, got, want)
		}
	}
	for t, want := range e.Conditions {
		got := conditionOf(obj, t)
		if !strings.Contains(want, "/") {
			got, _, _ = strings.Cut(got, "/")
		}
		if got != want {
			return fmt.Sprintf("condition %s is %q, want %q%s", t, got, want, conditionMessage(obj, t))
		}
	}
	if e.SameAsSetup {
		before, ok := r.setup[e.Kind+" "+objKey(obj)]
		if !ok {
			return fmt.Sprintf("%s %s was not created by the setup", e.Kind, refKey(e.Ref))
		}
		now := provider.UserView(withoutFloodgate(obj).Object)
		if d := diffViews(before, now); d != "" {
			return fmt.Sprintf("%s %s differs from setup: %s", e.Kind, refKey(e.Ref), d)
		}
	}
	return ""
}

func describeExpect(e *Expect) string {
	var parts []string
	switch {
	case e.Absent:
		parts = append(parts, "absent")
	case e.SameAsSetup:
		parts = append(parts, "exactly as at setup")
	}
	for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, e.Fields[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(e.Conditions)) {
		parts = append(parts, fmt.Sprintf("%s=%s", k, e.Conditions[k]))
	}
	return fmt.Sprintf("expect %s %s %s", e.Kind, refKey(e.Ref), strings.Join(parts, " "))
}

// conditionMessage is ": " and a condition's message ("" when it has none).
func conditionMessage(obj *unstructured.Unstructured, t string) string {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == t && m["message"] != nil && m["message"] != "" {
			return fmt.Sprintf(": %v", m["message"])
		}
	}
	return ""
}

func conditionOf(obj *unstructured.Unstructured, t string) string {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == t {
			return fmt.Sprintf("%v/%v", m["status"], m["reason"])
		}
	}
	return "absent"
}

// field reads a dotted path; after metadata.annotations. or metadata.labels. the rest is a key.
func field(obj map[string]any, path string) (any, bool) {
	for _, prefix := range []string{"metadata.annotations.", "metadata.labels."} {
		if key, ok := strings.CutPrefix(path, prefix); ok {
			m, _, _ := unstructured.NestedStringMap(obj, strings.Split(strings.TrimSuffix(prefix, "."), ".")...)
			v, found := m[key]
			return v, found
		}
	}
	var cur any = obj
	for _, key := range strings.Split(path, ".") {
		switch node := cur.(type) {
		case map[string]any:
			v, ok := node[key]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			cur = node[i]
		default:
			return nil, false
		}
	}
	return cur, true
}
