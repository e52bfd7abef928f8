package gatewayapi

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/internal/knobs"
)

func prefix(p string) gatewayv1.HTTPRouteMatch {
	return gatewayv1.HTTPRouteMatch{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To(p)}}
}

func backend(name string, weight int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
		Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind("Service")), Name: gatewayv1.ObjectName(name), Port: ptr.To(gatewayv1.PortNumber(80))},
		Weight: ptr.To(weight)}}
}

// twoRules are two rules, the second with a filter of the user's own.
func twoRules() []Rule {
	return []Rule{
		{Matches: []gatewayv1.HTTPRouteMatch{prefix("/")}, BackendRefs: []gatewayv1.HTTPBackendRef{backend("api", 1)}},
		{Matches: []gatewayv1.HTTPRouteMatch{prefix("/v2")}, BackendRefs: []gatewayv1.HTTPBackendRef{backend("api-v2", 3), backend("api-v2-canary", 1)},
			Filters: []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier,
				RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{{Name: "X-Team", Value: "edge"}}}}}},
	}
}

func lever(k knobs.Knobs) Lever {
	return Lever{Knobs: k, Policy: "api", RegionHeader: "CF-IPCountry", ShedService: "floodgate-shed-api", ShedPort: 8080, RegexAllowed: true}
}

func TestShedAllSendsEveryRuleToTheShedServiceWithoutTheUsersFilters(t *testing.T) {
	out := Render(twoRules(), lever(knobs.ShedAll()))
	if len(out) != 2 {
		t.Fatalf("ShedAll adds no rule: %d rules", len(out))
	}
	for i, r := range out {
		if len(r.BackendRefs) != 1 || r.BackendRefs[0].Name != "floodgate-shed-api" || len(r.Filters) != 0 {
			t.Fatalf("rule %d: %+v", i, r)
		}
		if !sameJSON(r.Matches, twoRules()[i].Matches) {
			t.Fatalf("rule %d's matches changed", i)
		}
	}
}

func TestShedAllWithARedirectAnswersEveryRuleWithA302(t *testing.T) {
	l := lever(knobs.ShedAll())
	var err error
	if l.Redirect, err = RedirectFilter("https://status.example.com/incident"); err != nil {
		t.Fatal(err)
	}
	for _, r := range Render(twoRules(), l) {
		if len(r.BackendRefs) != 0 || len(r.Filters) != 1 || r.Filters[0].RequestRedirect == nil ||
			*r.Filters[0].RequestRedirect.Hostname != "status.example.com" || *r.Filters[0].RequestRedirect.Path.ReplaceFullPath != "/incident" {
			t.Fatalf("%+v", r)
		}
	}
	if _, err := RedirectFilter("https://status.example.com/incident?id=7"); err == nil || !strings.Contains(err.Error(), "query string") {
		t.Fatalf("a redirect with a query must be refused: %v", err)
	}
}

func TestAdmitPercentScalesTheUsersWeightsAgainstTheShedBackendExactly(t *testing.T) {
	out := Render(twoRules(), lever(knobs.New(false, nil, 0, 25)))
	refs := out[1].BackendRefs
	// api-v2 3 and canary 1 (sum 4) at 25%: 75, 25 and shed 300, reduced by 25: 3, 1, 12.
	got := fmt.Sprintf("%d %d %s %d", *refs[0].Weight, *refs[1].Weight, refs[2].Name, *refs[2].Weight)
	if got != "3 1 floodgate-shed-api 12" {
		t.Fatalf("weights %s", got)
	}
	if len(out[1].Filters) != 1 {
		t.Fatal("admitPercent keeps the user's filters")
	}
}

func TestAnAllowlistAdmittingMissingRegionsIsOneRuleOfCopiesWithTheComplement(t *testing.T) {
	out := Render(twoRules(), lever(knobs.New(true, []string{"AU"}, 0, 0)))
	if len(out) != 3 || *out[2].Name != "floodgate-api" || !sameJSON(out[:2], twoRules()) {
		t.Fatalf("the user's rules stay; one rule is added: %+v", out)
	}
	own := out[2]
	if len(own.Matches) != 2 || own.BackendRefs[0].Name != "floodgate-shed-api" || len(own.Filters) != 0 {
		t.Fatalf("own rule: %+v", own)
	}
	h := own.Matches[0].Headers[0]
	if *h.Type != gatewayv1.HeaderMatchRegularExpression || h.Value != "^([^A].*|A([^U].*|U(.+))?)?$" {
		t.Fatalf("header %+v", h)
	}
}

func TestAnAllowlistSheddingMissingRegionsKeepsAllowedRegionsOnTheUsersRules(t *testing.T) {
	l := lever(knobs.New(true, []string{"AU", "NZ"}, 0, 0))
	l.MissingRegionShed = true
	out := Render(twoRules(), l)
	if len(out[0].Matches) != 2 || out[0].Matches[1].Headers[0].Value != "NZ" || *out[0].Matches[1].Headers[0].Type != gatewayv1.HeaderMatchExact {
		t.Fatalf("one Exact copy per region: %+v", out[0].Matches)
	}
	if len(out[1].Filters) != 1 || out[1].BackendRefs[0].Name != "api-v2" {
		t.Fatal("the allowed copies keep the user's backends and filters")
	}
	if own := out[2]; !sameJSON(own.Matches, []gatewayv1.HTTPRouteMatch{prefix("/"), prefix("/v2")}) || own.BackendRefs[0].Name != "floodgate-shed-api" {
		t.Fatalf("the originals go to the shed Service: %+v", own)
	}
}

func TestStripGivesBackExactlyTheRecordedRulesWhenNobodyEditedTheRoute(t *testing.T) {
	for _, k := range []knobs.Knobs{knobs.ShedAll(), knobs.New(true, []string{"AU"}, 0, 50), knobs.New(false, nil, 0, 10)} {
		set := Render(twoRules(), lever(k))
		if got := Strip(set, twoRules(), set, lever(k)); !sameJSON(got.Rules, twoRules()) || len(got.Kept) != 0 {
			t.Fatalf("%+v: %+v", k, got)
		}
	}
}

func TestAnEditDuringTheIncidentIsKeptAndReportedWithoutFloodgatesAdditions(t *testing.T) {
	k := knobs.New(true, []string{"AU"}, 0, 50)
	set := Render(twoRules(), lever(k))
	now := Render(twoRules(), lever(k))
	// The user adds a header to rule 1's filter and a new rule, during the incident.
	now[1].Filters[0].RequestHeaderModifier.Set = append(now[1].Filters[0].RequestHeaderModifier.Set, gatewayv1.HTTPHeader{Name: "X-Incident", Value: "1"})
	now = append(now, Rule{Matches: []gatewayv1.HTTPRouteMatch{prefix("/status")}, BackendRefs: []gatewayv1.HTTPBackendRef{backend("status", 1)}})
	got := Strip(now, twoRules(), set, lever(k))
	want := twoRules()
	want[1].Filters[0].RequestHeaderModifier.Set = append(want[1].Filters[0].RequestHeaderModifier.Set, gatewayv1.HTTPHeader{Name: "X-Incident", Value: "1"})
	want = append(want, now[3])
	if !sameJSON(got.Rules, want) {
		t.Fatalf("got  %s\nwant %s", js(got.Rules), js(want))
	}
	if strings.Join(got.Kept, ",") != "spec.rules[1].filters,spec.rules[2] (added)" {
		t.Fatalf("kept %v", got.Kept)
	}
}

func TestARuleNamedLikeFloodgatesThatFloodgateDidNotWriteIsNeverStripped(t *testing.T) {
	k := knobs.ShedAll() // Floodgate's own rule is not part of this lever
	set := Render(twoRules(), lever(k))
	theirs := Rule{Name: ptr.To(gatewayv1.SectionName(OwnRuleName("api"))), Matches: []gatewayv1.HTTPRouteMatch{prefix("/status")},
		BackendRefs: []gatewayv1.HTTPBackendRef{backend("status", 1)}}
	now := append(Render(twoRules(), lever(k)), theirs)
	got := Strip(now, twoRules(), set, lever(k))
	if want := append(twoRules(), theirs); !sameJSON(got.Rules, want) {
		t.Fatalf("got  %s\nwant %s", js(got.Rules), js(want))
	}
	if strings.Join(got.Kept, ",") != "spec.rules[floodgate-api] (added)" {
		t.Fatalf("kept %v", got.Kept)
	}
}

func TestAWeightTheUserChangedDuringTheIncidentIsKeptAndTheShedBackendGoes(t *testing.T) {
	k := knobs.New(false, nil, 0, 50)
	set := Render(twoRules(), lever(k))
	now := Render(twoRules(), lever(k))
	now[1].BackendRefs[1].Weight = ptr.To[int32](0) // drain the canary
	got := Strip(now, twoRules(), set, lever(k))
	refs := got.Rules[1].BackendRefs
	if len(refs) != 2 || *refs[0].Weight != 3 || *refs[1].Weight != 0 {
		t.Fatalf("%s", js(refs))
	}
}

func TestRefusals(t *testing.T) {
	many := make([]Rule, 16)
	for i := range many {
		many[i] = Rule{Matches: []gatewayv1.HTTPRouteMatch{prefix(fmt.Sprintf("/%d", i))}}
	}
	onHeader := twoRules()
	onHeader[0].Matches[0].Headers = []gatewayv1.HTTPHeaderMatch{{Name: "cf-ipcountry", Value: "AU"}}
	allow := knobs.New(true, []string{"AU"}, 0, 0)
	noRegex := lever(allow)
	noRegex.RegexAllowed = false
	for name, c := range map[string]struct {
		rules []Rule
		l     Lever
		want  string
	}{
		"rate limit":        {twoRules(), lever(knobs.New(false, nil, 50, 0)), "not available in core Gateway API"},
		"sixteen rules":     {many, lever(allow), "already has 16 of the 16 rules"},
		"region header":     {onHeader, lever(allow), "already matches the region header"},
		"regex unknown":     {twoRules(), noRegex, "not known to support it"},
		"limit unavailable": {twoRules(), limited(func(l *Lever) { l.LimitRefusal = "no Middleware here" }), "no Middleware here"},
		"sixteen filters":   {[]Rule{{Filters: make([]gatewayv1.HTTPRouteFilter, 16)}}, limited(nil), "has 16 filters"},
		"weight too high":   {[]Rule{{BackendRefs: []gatewayv1.HTTPBackendRef{backend("a", 999_999), backend("b", 1)}}}, lever(knobs.New(false, nil, 0, 33)), "over Gateway API's 1000000"},
	} {
		if got := Refusal(c.rules, c.l); !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", name, got, c.want)
		}
	}
	exact := lever(allow)
	exact.MissingRegionShed, exact.RegexAllowed = true, false
	if got := Refusal(twoRules(), exact); got != "" {
		t.Errorf("Exact matches per region need no regular expression: %q", got)
	}
}

// TestTheCRDCopiesAreTheModules: test/crds/gateway-api (the kinds Floodgate reads and writes)
// and test/crds/gateway-api-routes (the further kinds a real gateway, Traefik's, watches) hold the
// CRDs of the Gateway API version go.mod names, unchanged.
// limited is a lever of a 20 rps per-client limit on a data plane that carries it by the
// ExtensionRef filter limitFilter, with edit applied.
func limited(edit func(*Lever)) Lever {
	l := lever(knobs.New(true, []string{"AU"}, 20, 0))
	l.HasLimit, l.Limit = true, &limitFilter
	if edit != nil {
		edit(&l)
	}
	return l
}

var limitFilter = gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterExtensionRef,
	ExtensionRef: &gatewayv1.LocalObjectReference{Group: "traefik.io", Kind: "Middleware", Name: "floodgate-api-api"}}

func TestAPerClientLimitIsTheDataPlanesFilterAfterTheUsersOnEveryRuleOfTheirs(t *testing.T) {
	out := Render(twoRules(), limited(nil))
	if len(out) != 3 {
		t.Fatalf("the allowlist adds Floodgate's rule: %d rules", len(out))
	}
	for i, want := range []int{1, 2} {
		if f := out[i].Filters; len(f) != want || !sameJSON(f[len(f)-1], limitFilter) || (want == 2 && !sameJSON(f[0], twoRules()[1].Filters[0])) {
			t.Errorf("rule %d: %s", i, js(f))
		}
	}
	if len(out[2].Filters) != 0 {
		t.Errorf("Floodgate's own rule sends to the shed Service, unlimited: %s", js(out[2].Filters))
	}
	if shed := Render(twoRules(), limited(func(l *Lever) { l.Knobs = knobs.ShedAll() })); len(shed[1].Filters) != 0 {
		t.Errorf("a ShedAll limits nothing: %s", js(shed[1].Filters))
	}
	if core := Render(twoRules(), lever(knobs.New(false, nil, 20, 0))); !sameJSON(core, twoRules()) {
		t.Errorf("core Gateway API has no limit to write: %s", js(core))
	}
}

func TestALimitThatAttachesToTheRouteLeavesTheRulesAsTheLeverWantsThem(t *testing.T) {
	attached := limited(func(l *Lever) { l.Limit = nil })
	if why := Refusal(twoRules(), attached); why != "" {
		t.Fatalf("a data plane whose limit attaches to the route takes it: %q", why)
	}
	want := Render(twoRules(), lever(knobs.New(true, []string{"AU"}, 0, 0)))
	if got := Render(twoRules(), attached); !sameJSON(got, want) {
		t.Fatalf("no filter on the rules:\ngot  %s\nwant %s", js(got), js(want))
	}
	if a := appliedKnobs(attached); a.PerClientRequestsPerSecond != 20 {
		t.Errorf("status says the limit is applied: %+v", a)
	}
	if why := Refusal(twoRules(), lever(knobs.New(false, nil, 20, 0))); !strings.Contains(why, "not available in core Gateway API") {
		t.Errorf("core Gateway API has none: %q", why)
	}
}

// answerFilter is a data plane's own direct response, by ExtensionRef.
var answerFilter = gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterExtensionRef,
	ExtensionRef: &gatewayv1.LocalObjectReference{Group: "gateway.envoyproxy.io", Kind: "HTTPRouteFilter", Name: "floodgate-api-api"}}

func TestShedAllAnsweredByTheDataPlaneGivesEveryRuleItsFilterAndNoBackend(t *testing.T) {
	l := lever(knobs.ShedAll())
	l.Answer = &answerFilter
	out := Render(twoRules(), l)
	for i, r := range out {
		if len(r.BackendRefs) != 0 || len(r.Filters) != 1 || !sameJSON(r.Filters[0], answerFilter) || !sameJSON(r.Matches, twoRules()[i].Matches) {
			t.Fatalf("rule %d: %s", i, js(r))
		}
	}
	if !l.ProxyAnswers() {
		t.Error("no request goes to the shed backend")
	}
	redirected := l
	redirected.Redirect, _ = RedirectFilter("https://status.example.com/incident")
	if r := Render(twoRules(), redirected)[0]; r.Filters[0].Type != gatewayv1.HTTPRouteFilterRequestRedirect {
		t.Errorf("a redirect is the core RequestRedirect still: %s", js(r))
	}
	if ramp := Render(twoRules(), func() Lever { x := lever(knobs.New(true, []string{"AU"}, 0, 0)); x.Answer = &answerFilter; return x }()); !sameJSON(ramp, Render(twoRules(), lever(knobs.New(true, []string{"AU"}, 0, 0)))) {
		t.Errorf("only a ShedAll is answered by the data plane: %s", js(ramp))
	}
	if got := Strip(out, twoRules(), out, l); !sameJSON(got.Rules, twoRules()) {
		t.Errorf("restore: %s", js(got.Rules))
	}
	edited := Render(twoRules(), l)
	edited[1].Filters = append(edited[1].Filters, twoRules()[1].Filters[0]) // the user puts their filter back mid-incident
	if got := Strip(edited, twoRules(), out, l); !sameJSON(got.Rules[1].Filters, twoRules()[1].Filters) {
		t.Errorf("the answer's filter goes, the user's stays: %s", js(got.Rules[1].Filters))
	}
}

func TestALimitsFilterGoesWhateverTheUserEditedMeanwhile(t *testing.T) {
	set := Render(twoRules(), limited(nil))
	if got := Strip(set, twoRules(), set, limited(nil)); !sameJSON(got.Rules, twoRules()) || len(got.Kept) != 0 {
		t.Fatalf("nobody edited: %s, kept %v", js(got.Rules), got.Kept)
	}
	now := Render(twoRules(), limited(nil))
	extra := gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterResponseHeaderModifier,
		ResponseHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{{Name: "X-Incident", Value: "1"}}}}
	now[0].Filters = append(now[0].Filters, extra) // the user adds a filter during the incident
	got := Strip(now, twoRules(), set, limited(nil))
	want := twoRules()
	want[0].Filters = []gatewayv1.HTTPRouteFilter{extra}
	if !sameJSON(got.Rules, want) || strings.Join(got.Kept, ",") != "spec.rules[0].filters" {
		t.Fatalf("got  %s\nwant %s\nkept %v", js(got.Rules), js(want), got.Kept)
	}
}

func TestTheCRDCopiesAreTheModules(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	copies, _ := filepath.Glob(filepath.Join("..", "..", "..", "test", "crds", "gateway-api", "*.yaml"))
	routes, _ := filepath.Glob(filepath.Join("..", "..", "..", "test", "crds", "gateway-api-routes", "*.yaml"))
	if len(copies) != 4 || len(routes) != 3 {
		t.Fatalf("%d and %d copies, want 4 and 3", len(copies), len(routes))
	}
	for _, c := range append(copies, routes...) {
		mine, _ := os.ReadFile(c)
		theirs, err := os.ReadFile(filepath.Join(dir, "config", "crd", "standard", filepath.Base(c)))
		if err != nil || string(mine) != string(theirs) {
			t.Errorf("%s differs from the module's (run make gateway-api-crds): %v", c, err)
		}
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestASyncThatPutsTheUsersRulesBackIsNotReportedAsAnEdit(t *testing.T) {
	l := lever(knobs.New(true, []string{"AU", "NZ"}, 0, 0))
	l.MissingRegionShed = true
	set := Render(twoRules(), l)
	got := Strip(twoRules(), twoRules(), set, l) // Argo CD synced the route from Git mid-incident
	if !sameJSON(got.Rules, twoRules()) || len(got.Kept) != 0 {
		t.Fatalf("%s kept %v", js(got.Rules), got.Kept)
	}
}
