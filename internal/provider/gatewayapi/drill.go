package gatewayapi

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
)

// What a drill knows of an HTTPRoute: the fields its timeline prints, what a rehearsal copies
// with it, and the CRDs it installs.

// TestCRDs is the set of CRDs (test/crds) a drill installs for HTTPRoutes: Gateway API's
// standard channel. A rehearsal that installs them plays the routes' gateways.
const TestCRDs = "gateway-api"

var (
	gvkService      = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
	gvkGateway      = schema.GroupVersionKind{Group: v1alpha1.GroupGatewayAPI, Version: "v1", Kind: "Gateway"}
	gvkGatewayClass = schema.GroupVersionKind{Group: v1alpha1.GroupGatewayAPI, Version: "v1", Kind: "GatewayClass"}
)

// CRDSet names TestCRDs.
func (p *Provider) CRDSet() string { return TestCRDs }

// TimelineFields are each rule in one line and the gateways' verdict on the route's current
// generation.
func (p *Provider) TimelineFields(o *unstructured.Unstructured) provider.Fields {
	f := provider.Fields{}
	rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
	for i, rule := range rules {
		if m, ok := rule.(map[string]any); ok {
			f[fmt.Sprintf("rule %d", i)] = describeRule(m)
		}
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(o.Object, "status", "parents"); found {
		f["gateway"] = routeVerdict(o)
	}
	return f
}

// CopyNeighbours copies, for a rehearsal, an HTTPRoute's backend Services, its parent Gateways
// and their GatewayClasses.
func (p *Provider) CopyNeighbours(ctx context.Context, route *unstructured.Unstructured, copyObject provider.CopyFunc) error {
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		refs, _, _ := unstructured.NestedSlice(rule, "backendRefs")
		for _, b := range refs {
			m, _ := b.(map[string]any)
			if kind, _ := m["kind"].(string); kind != "" && kind != "Service" {
				continue
			}
			ns, _ := m["namespace"].(string)
			if _, err := copyObject(ctx, gvkService, orDefault(ns, route.GetNamespace()), fmt.Sprint(m["name"])); err != nil {
				return err
			}
		}
	}
	parents, _, _ := unstructured.NestedSlice(route.Object, "spec", "parentRefs")
	for _, parent := range parents {
		m, _ := parent.(map[string]any)
		if kind, _ := m["kind"].(string); kind != "" && kind != "Gateway" {
			continue
		}
		ns, _ := m["namespace"].(string)
		gw, err := copyObject(ctx, gvkGateway, orDefault(ns, route.GetNamespace()), fmt.Sprint(m["name"]))
		if err != nil || gw == nil {
			return err
		}
		if class, ok, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName"); ok {
			if _, err := copyObject(ctx, gvkGatewayClass, "", class); err != nil {
				return err
			}
		}
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
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
		switch fm["type"] {
		case "RequestRedirect":
			host, _, _ := unstructured.NestedString(fm, "requestRedirect", "hostname")
			to = append(to, "302 to "+host)
			continue
		case "ExtensionRef":
			kind, _, _ := unstructured.NestedString(fm, "extensionRef", "kind")
			name, _, _ := unstructured.NestedString(fm, "extensionRef", "name")
			to = append(to, fmt.Sprintf("(%s %s)", kind, name))
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
func routeVerdict(o *unstructured.Unstructured) string {
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
