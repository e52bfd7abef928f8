package drill

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
)

// gvkPolicy is the kind of the drill's own objects, which the timeline follows beside the
// providers' kinds.
var gvkPolicy = v1alpha1.GroupVersion.WithKind("TrafficPolicy")

// take reads the followed objects of the watched namespaces (the policies and every provider's
// kind the control plane serves), each flattened to the fields a responder cares about.
func (r *runner) take(ctx context.Context) map[string]map[string]string {
	snap := map[string]map[string]string{}
	followed := append([]kind{{gvk: gvkPolicy}}, r.kinds...)
	for ns := range r.watched {
		for _, k := range followed {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(k.gvk.GroupVersion().WithKind(k.gvk.Kind + "List"))
			if err := r.env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
				continue
			}
			for i := range list.Items {
				o := &list.Items[i]
				snap[k.gvk.Kind+" "+objKey(o)] = flatten(k, o)
			}
		}
	}
	return snap
}

// flatten is what a timeline prints of an object: its annotations but Floodgate's own, and the
// fields its kind prints (a policy's lever and status; a provider's, as it says).
func flatten(k kind, o *unstructured.Unstructured) map[string]string {
	f := map[string]string{}
	for k, v := range o.GetAnnotations() {
		switch {
		case k == restore.Annotation:
			f["restore record"] = "saved"
		case strings.HasPrefix(k, "traffic.floodgate.dev/"), strings.HasPrefix(k, "kubectl.kubernetes.io/"):
		default:
			f["annotations["+k+"]"] = v
		}
	}
	if k.provider != nil {
		maps.Copy(f, k.timelineFields(o))
		return f
	}
	put := func(name string, path ...string) { provider.Fields(f).Put(o, name, path...) }
	put("action", "spec", "action")
	put("paused", "spec", "ramp", "paused")
	put("allowRegions", "spec", "allowRegions")
	put("phase", "status", "phase")
	put("step", "status", "progress")
	put("keptChanges", "status", "keptChanges")
	gates, _, _ := unstructured.NestedSlice(o.Object, "status", "ramp", "gates")
	for _, g := range gates {
		if m, ok := g.(map[string]any); ok {
			f[fmt.Sprintf("gate %v", m["name"])] = fmt.Sprintf("%v %v", m["verdict"], m["reading"])
		}
	}
	for _, t := range []string{"Ready", "Degraded", "GateUnknown", "LeverStale", "Armed", "Confirmed"} {
		if c := conditionOf(o, t); c != "absent" {
			f[t] = c
		}
	}
	return f
}

// settle waits until the followed objects stop changing (the controller has acted), then returns
// what changed since the last snapshot.
func (r *runner) settle(ctx context.Context) []string {
	last := r.take(ctx)
	quietSince := time.Now()
	deadline := time.Now().Add(5 * time.Second)
	for time.Since(quietSince) < 300*time.Millisecond && time.Now().Before(deadline) {
		time.Sleep(30 * time.Millisecond)
		if now := r.take(ctx); !equalSnapshots(now, last) {
			last, quietSince = now, time.Now()
		}
	}
	changes := diffSnapshots(r.snapshot, last)
	r.snapshot = last
	return changes
}

func equalSnapshots(a, b map[string]map[string]string) bool {
	return maps.EqualFunc(a, b, func(x, y map[string]string) bool { return maps.Equal(x, y) })
}

func diffSnapshots(before, after map[string]map[string]string) []string {
	var out []string
	for _, k := range unionKeys(before, after) {
		b, inBefore := before[k]
		a, inAfter := after[k]
		switch {
		case !inBefore:
			out = append(out, "+ "+k+" created")
			continue
		case !inAfter:
			out = append(out, "- "+k+" deleted")
			continue
		}
		var parts []string
		for _, f := range unionKeys(b, a) {
			if b[f] != a[f] {
				parts = append(parts, fmt.Sprintf("%s: %s → %s", f, orAbsent(b, f), orAbsent(a, f)))
			}
		}
		if len(parts) > 0 {
			out = append(out, "~ "+k+"  "+strings.Join(parts, ", "))
		}
	}
	return out
}

// unionKeys returns the keys of both maps, sorted.
func unionKeys[V any](a, b map[string]V) []string {
	keys := make(map[string]bool, len(a)+len(b))
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return slices.Sorted(maps.Keys(keys))
}

func orAbsent(m map[string]string, k string) string {
	if v, ok := m[k]; ok {
		if len(v) > 60 {
			return v[:57] + "..."
		}
		return v
	}
	return "(absent)"
}

func (r *runner) emit(row Row) {
	r.res.Rows = append(r.res.Rows, row)
	printRow(r.out, row)
}

// printRow prints a row of the timeline.
func printRow(out io.Writer, row Row) {
	fmt.Fprintf(out, "  +%-7s  %s  %s: %s\n", fmt.Sprintf("%.2fs", row.Wall.Seconds()), row.At.UTC().Format("15:04:05"), row.Kind, row.Title)
	indent := strings.Repeat(" ", 24)
	for _, l := range row.Output {
		fmt.Fprintf(out, "%s> %s\n", indent, l)
	}
	for _, c := range row.Changes {
		fmt.Fprintf(out, "%s%s\n", indent, c)
	}
	switch {
	case row.Failure != "":
		fmt.Fprintf(out, "%s✗ %s\n", indent, row.Failure)
	case row.Kind == "expect":
		fmt.Fprintf(out, "%s✓\n", indent)
	}
}

func diffViews(before, after map[string]any) string {
	b, _ := yaml.Marshal(before)
	a, _ := yaml.Marshal(after)
	if string(a) == string(b) {
		return ""
	}
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(b)), B: difflib.SplitLines(string(a)), Context: 0})
	var lines []string
	for _, l := range strings.Split(d, "\n") {
		if (strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-")) && !strings.HasPrefix(l, "+++") && !strings.HasPrefix(l, "---") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return strings.Join(lines, "; ")
}
