package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/internal/restore"
)

// followed are the kinds the timeline reports changes of.
var followed = []Ref{
	{APIVersion: "traffic.floodgate.dev/v1alpha1", Kind: "TrafficPolicy"},
	{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"},
	{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
	{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject"},          // where the drill installs KEDA's CRD
	{APIVersion: "gateway.networking.k8s.io/v1", Kind: "HTTPRoute"}, // where the drill installs Gateway API's CRDs
}

// take reads the followed objects of the watched namespaces, each flattened to the fields a
// responder cares about.
func (r *runner) take(ctx context.Context) map[string]map[string]string {
	snap := map[string]map[string]string{}
	for ns := range r.watched {
		for _, ref := range followed {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(gvk(ref).GroupVersion().WithKind(ref.Kind + "List"))
			if err := r.env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
				continue
			}
			for i := range list.Items {
				o := &list.Items[i]
				snap[ref.Kind+" "+objKey(o)] = flatten(ref.Kind, o)
			}
		}
	}
	return snap
}

func flatten(kind string, o *unstructured.Unstructured) map[string]string {
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
	put := func(name string, path ...string) {
		if v, found, _ := unstructured.NestedFieldNoCopy(o.Object, path...); found {
			f[name] = compactJSON(v)
		}
	}
	switch kind {
	case "TrafficPolicy":
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
		for _, t := range []string{"Ready", "Degraded", "GateUnknown", "LeverStale", "Armed"} {
			if c := conditionOf(o, t); c != "absent" {
				f[t] = c
			}
		}
	case "HorizontalPodAutoscaler":
		put("minReplicas", "spec", "minReplicas")
		put("scaleDown.selectPolicy", "spec", "behavior", "scaleDown", "selectPolicy")
	case "HTTPRoute":
		rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
		for i, rule := range rules {
			if m, ok := rule.(map[string]any); ok {
				f[fmt.Sprintf("rule %d", i)] = describeRule(m)
			}
		}
		put("gateway", "status", "parents")
		if v, ok := f["gateway"]; ok {
			f["gateway"] = routeVerdict(o, v)
		}
	case "ScaledObject":
		put("minReplicaCount", "spec", "minReplicaCount")
		put("paused-scale-in", "metadata", "annotations", "autoscaling.keda.sh/paused-scale-in")
		put("scaleDown.selectPolicy", "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "selectPolicy")
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
	fmt.Fprintf(r.out, "  +%-7s  %s  %s: %s\n", fmt.Sprintf("%.2fs", row.Wall.Seconds()), row.At.UTC().Format("15:04:05"), row.Kind, row.Title)
	indent := strings.Repeat(" ", 24)
	for _, l := range row.Output {
		fmt.Fprintf(r.out, "%s> %s\n", indent, l)
	}
	for _, c := range row.Changes {
		fmt.Fprintf(r.out, "%s%s\n", indent, c)
	}
	switch {
	case row.Failure != "":
		fmt.Fprintf(r.out, "%s✗ %s\n", indent, row.Failure)
	case row.Kind == "expect":
		fmt.Fprintf(r.out, "%s✓\n", indent)
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

func compactJSON(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// describeRule says in one line what an HTTPRoute rule matches and where it sends:
// "floodgate-api: / [CF-IPCountry ~ ^(...)$] → floodgate-shed-api".
func describeRule(rule map[string]any) string {
	var matches []string
	ms, _, _ := unstructured.NestedSlice(rule, "matches")
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		path, _, _ := unstructured.NestedString(mm, "path", "value")
		if t, _, _ := unstructured.NestedString(mm, "path", "type"); t == "Exact" {
			path = "=" + path
		}
		hs, _, _ := unstructured.NestedSlice(mm, "headers")
		for _, h := range hs {
			hm, _ := h.(map[string]any)
			op := "="
			if hm["type"] == "RegularExpression" {
				op = "~"
			}
			path += fmt.Sprintf(" [%v %s %v]", hm["name"], op, hm["value"])
		}
		matches = append(matches, path)
	}
	var to []string
	bs, _, _ := unstructured.NestedSlice(rule, "backendRefs")
	for _, b := range bs {
		bm, _ := b.(map[string]any)
		if w, ok := bm["weight"]; ok && len(bs) > 1 {
			to = append(to, fmt.Sprintf("%v×%v", bm["name"], w))
		} else {
			to = append(to, fmt.Sprint(bm["name"]))
		}
	}
	fs, _, _ := unstructured.NestedSlice(rule, "filters")
	for _, fl := range fs {
		fm, _ := fl.(map[string]any)
		if fm["type"] == "RequestRedirect" {
			host, _, _ := unstructured.NestedString(fm, "requestRedirect", "hostname")
			to = append(to, "302 to "+host)
			continue
		}
		to = append(to, fmt.Sprintf("(%v)", fm["type"]))
	}
	out := strings.Join(matches, ", ") + " → " + strings.Join(to, " ")
	if name, ok := rule["name"].(string); ok {
		out = name + ": " + out
	}
	return out
}

// routeVerdict is the gateways' verdict on the route's current generation, in a word.
func routeVerdict(o *unstructured.Unstructured, _ string) string {
	parents, _, _ := unstructured.NestedSlice(o.Object, "status", "parents")
	verdict := "accepted"
	for _, p := range parents {
		pm, _ := p.(map[string]any)
		conds, _, _ := unstructured.NestedSlice(pm, "conditions")
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if cm["type"] != "Accepted" && cm["type"] != "ResolvedRefs" {
				continue
			}
			if g, _ := cm["observedGeneration"].(int64); g < o.GetGeneration() {
				verdict = "pending"
			} else if cm["status"] != "True" {
				return fmt.Sprintf("rejected (%v)", cm["message"])
			}
		}
	}
	return fmt.Sprintf("%s (generation %d)", verdict, o.GetGeneration())
}
