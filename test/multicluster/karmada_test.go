// Package multicluster tests what Floodgate gives the multi-cluster engines users already run:
// Karmada's declarative interpreter for TrafficPolicy (config/karmada), its Lua run by gopher-lua,
// the Lua VM Karmada embeds, on status objects a live controller wrote, its aggregate written back
// through the API server's own schema; and the OCM example (config/ocm) read as the kinds it names.
package multicluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/test/fixtures"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// interpreter is config/karmada's customization: its Lua scripts by operation.
type interpreter struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Target struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		} `json:"target"`
		Customizations map[string]struct {
			LuaScript string `json:"luaScript"`
		} `json:"customizations"`
	} `json:"spec"`
}

func loadInterpreter(t *testing.T) interpreter {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "karmada", "trafficpolicy-interpreter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var in interpreter
	if err := yaml.UnmarshalStrict(data, &in); err != nil {
		t.Fatal(err)
	}
	if in.Kind != "ResourceInterpreterCustomization" || in.Spec.Target.APIVersion != v1alpha1.GroupVersion.String() || in.Spec.Target.Kind != "TrafficPolicy" {
		t.Fatalf("config/karmada is not an interpreter of TrafficPolicy: %s for %+v", in.Kind, in.Spec.Target)
	}
	return in
}

// call runs the function fn of an operation's script, as Karmada does: the script loaded, then
// the function called with the arguments converted to Lua tables; the result converted back.
func (in interpreter) call(t *testing.T, operation, fn string, args ...any) any {
	t.Helper()
	L := lua.NewState()
	defer L.Close()
	if err := L.DoString(in.Spec.Customizations[operation].LuaScript); err != nil {
		t.Fatalf("%s: %v", operation, err)
	}
	var largs []lua.LValue
	for _, a := range args {
		largs = append(largs, toLua(L, jsonValue(t, a)))
	}
	if err := L.CallByParam(lua.P{Fn: L.GetGlobal(fn), NRet: 1, Protect: true}, largs...); err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	out := L.Get(-1)
	L.Pop(1)
	return fromLua(out)
}

// jsonValue is v as JSON decodes it (maps, slices, float64, string, bool, nil).
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		tbl := L.NewTable()
		for k, e := range x {
			tbl.RawSetString(k, toLua(L, e))
		}
		return tbl
	case []any:
		tbl := L.NewTable()
		for _, e := range x {
			tbl.Append(toLua(L, e))
		}
		return tbl
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	}
	return lua.LNil
}

func fromLua(v lua.LValue) any {
	switch x := v.(type) {
	case *lua.LTable:
		if n := x.Len(); n > 0 {
			out := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				out = append(out, fromLua(x.RawGetInt(i)))
			}
			return out
		}
		out := map[string]any{}
		x.ForEach(func(k, e lua.LValue) { out[k.String()] = fromLua(e) })
		return out
	case lua.LString:
		return string(x)
	case lua.LNumber:
		return float64(x)
	case lua.LBool:
		return bool(x)
	}
	return nil
}

// TestKarmadasAggregateShowsEveryMembersLever: three members' statuses, as a live controller
// wrote them (one policy taken at rest, shedding and ramping), reflected and aggregated by the
// interpreter's Lua: each member's phase, Armed and Confirmed are kept per member, the aggregate
// is True only where every member is, and the API server takes it as a TrafficPolicy status.
func TestKarmadasAggregateShowsEveryMembersLever(t *testing.T) {
	env, err := drill.StartEnv(time.Date(2024, 11, 12, 9, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	const ns = "edge"
	policy := fixture(t, env.Client, ns)
	in := loadInterpreter(t)
	snapshot := func(ok func(*v1alpha1.TrafficPolicy) bool) *v1alpha1.TrafficPolicy {
		t.Helper()
		return fixtures.EventuallyPolicy(t, env.Client, client.ObjectKeyFromObject(policy), ok)
	}
	atRest := snapshot(func(p *v1alpha1.TrafficPolicy) bool {
		return p.Status.Phase == v1alpha1.PhaseNormal && conditionIs(p, v1alpha1.ConditionArmed, metav1.ConditionTrue)
	})
	fixtures.KubectlFloodgate(t, env.Kubeconfig, env.Clock, "shed", "api", "-n", ns, "--wait")
	shedding := snapshot(func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseShedding })
	fixtures.KubectlFloodgate(t, env.Kubeconfig, env.Clock, "ramp", "api", "-n", ns, "--wait")
	ramping := snapshot(func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseRamping })

	for name, p := range map[string]*v1alpha1.TrafficPolicy{"at rest": atRest, "shedding": shedding, "ramping": ramping} {
		if healthy := in.call(t, "healthInterpretation", "InterpretHealth", p); healthy != true {
			t.Errorf("%s: a member whose lever is written is healthy: %v", name, healthy)
		}
	}
	stale := shedding.DeepCopy()
	stale.Generation++
	if healthy := in.call(t, "healthInterpretation", "InterpretHealth", stale); healthy != false {
		t.Errorf("a member whose controller has not seen the spec is not healthy: %v", healthy)
	}

	reflected := func(cluster string, p *v1alpha1.TrafficPolicy) map[string]any {
		status := in.call(t, "statusReflection", "ReflectStatus", p).(map[string]any)
		if status["phase"] != string(p.Status.Phase) || len(status["conditions"].([]any)) < 3 {
			t.Errorf("%s reflects %v", cluster, status)
		}
		return map[string]any{"clusterName": cluster, "status": status, "applied": true}
	}
	template := atRest.DeepCopy()
	template.Status = v1alpha1.TrafficPolicyStatus{}

	t.Log("members apart: the phase is nobody's, each condition names every member")
	mixed := aggregate(t, in, template, reflected("syd", ramping), reflected("sin", shedding), reflected("fra", atRest))
	if mixed.Status.Phase != "" {
		t.Errorf("members in three phases share none: %q", mixed.Status.Phase)
	}
	armed := meta.FindStatusCondition(mixed.Status.Conditions, v1alpha1.ConditionArmed)
	if armed == nil || armed.Status != metav1.ConditionTrue || armed.Message != "syd True, sin True, fra True" {
		t.Errorf("Armed: %+v", armed)
	}
	confirmed := meta.FindStatusCondition(mixed.Status.Conditions, v1alpha1.ConditionConfirmed)
	if confirmed == nil || confirmed.Status != metav1.ConditionUnknown || !strings.HasPrefix(confirmed.Message, "syd Unknown") {
		t.Errorf("Confirmed (no probe key in these members): %+v", confirmed)
	}

	t.Log("every member shedding: so is the aggregate; one not Ready makes it False")
	notReady := jsonValue(t, reflected("fra", shedding)).(map[string]any)
	for _, c := range notReady["status"].(map[string]any)["conditions"].([]any) {
		if c := c.(map[string]any); c["type"] == v1alpha1.ConditionReady {
			c["status"] = "False"
		}
	}
	all := aggregate(t, in, template, reflected("syd", shedding), reflected("sin", shedding), notReady)
	ready := meta.FindStatusCondition(all.Status.Conditions, v1alpha1.ConditionReady)
	if all.Status.Phase != v1alpha1.PhaseShedding || all.Status.ObservedAction != v1alpha1.ActionShedAll ||
		ready == nil || ready.Status != metav1.ConditionFalse || ready.Message != "syd True, sin True, fra False" {
		t.Errorf("aggregate of three shedding members, fra not Ready: phase %s, action %s, Ready %+v", all.Status.Phase, all.Status.ObservedAction, ready)
	}

	t.Log("the API server takes the aggregate as the policy's status, nothing pruned")
	onKarmada := fixtures.EventuallyPolicy(t, env.Client, client.ObjectKeyFromObject(policy), func(*v1alpha1.TrafficPolicy) bool { return true })
	if err := env.StopManager(); err != nil { // the Karmada control plane runs no Floodgate manager
		t.Fatal(err)
	}
	before := onKarmada.DeepCopy()
	onKarmada.Status = all.Status
	if err := env.Client.Status().Patch(context.Background(), onKarmada, client.MergeFrom(before)); err != nil {
		t.Fatalf("the API server refuses the aggregate: %v", err)
	}
	stored := fixtures.EventuallyPolicy(t, env.Client, client.ObjectKeyFromObject(policy), func(*v1alpha1.TrafficPolicy) bool { return true })
	if got, want := js(stored.Status.Conditions), js(all.Status.Conditions); got != want {
		t.Errorf("stored conditions differ from the aggregate:\n got  %s\n want %s", got, want)
	}
}

// TestKarmadaKeepsTheLeverAMemberPulled: Retain keeps what kubectl floodgate set on a member (the
// action, the request annotations), and takes everything else from the template.
func TestKarmadaKeepsTheLeverAMemberPulled(t *testing.T) {
	in := loadInterpreter(t)
	template := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "edge", Annotations: map[string]string{"team": "edge"}},
		Spec: v1alpha1.TrafficPolicySpec{Action: v1alpha1.ActionNormal, RegionHeader: "CF-IPCountry",
			Ramp: &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{AllowRegions: []string{"AU", "NZ"}, Hold: metav1.Duration{Duration: time.Minute}}}}}}
	member := template.DeepCopy()
	member.Spec.Action, member.Spec.Ramp.Paused = v1alpha1.ActionRamp, true
	member.Spec.Ramp.Steps[0].AllowRegions = []string{"AU"} // the template moved on since
	member.Annotations = map[string]string{v1alpha1.RequestAnnotation: "ramp:abc", v1alpha1.RequestReasonAnnotation: "AU first", "team": "old"}
	out := in.call(t, "retention", "Retain", template, member)
	var got v1alpha1.TrafficPolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(out.(map[string]any), &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Action != v1alpha1.ActionRamp || !got.Spec.Ramp.Paused || got.Annotations[v1alpha1.RequestAnnotation] != "ramp:abc" ||
		got.Annotations[v1alpha1.RequestReasonAnnotation] != "AU first" {
		t.Errorf("the member's lever was undone: %s", js(got))
	}
	if js(got.Spec.Ramp.Steps) != js(template.Spec.Ramp.Steps) || got.Annotations["team"] != "edge" {
		t.Errorf("the rest is the template's: %s", js(got))
	}
}

// TestTheOCMExampleAsksForEveryMembersLever: the ManifestWork's feedback rules read the phase, the
// action, Ready, Armed and Confirmed of the policy it distributes, and leave spec.action out.
func TestTheOCMExampleAsksForEveryMembersLever(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "ocm", "manifestwork.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var work struct {
		Spec struct {
			Workload struct {
				Manifests []map[string]any `json:"manifests"`
			} `json:"workload"`
			ManifestConfigs []struct {
				FeedbackRules []struct {
					JSONPaths []struct{ Name, Path string } `json:"jsonPaths"`
				} `json:"feedbackRules"`
			} `json:"manifestConfigs"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &work); err != nil {
		t.Fatal(err)
	}
	var policy v1alpha1.TrafficPolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(work.Spec.Workload.Manifests[0], &policy); err != nil {
		t.Fatal(err)
	}
	if policy.Spec.Action != "" {
		t.Errorf("the distributed manifest owns spec.action (%s): the work agent would undo a flip", policy.Spec.Action)
	}
	var paths []string
	for _, r := range work.Spec.ManifestConfigs[0].FeedbackRules[0].JSONPaths {
		paths = append(paths, r.Path)
	}
	for _, want := range []string{".status.phase", ".status.observedAction", `.status.conditions[?(@.type=="Armed")].status`, `.status.conditions[?(@.type=="Confirmed")].status`} {
		if !strings.Contains(strings.Join(paths, " "), want) {
			t.Errorf("no feedback rule reads %s: %v", want, paths)
		}
	}
}

// aggregate runs AggregateStatus on the template and the members' reflected statuses.
func aggregate(t *testing.T, in interpreter, template *v1alpha1.TrafficPolicy, items ...map[string]any) *v1alpha1.TrafficPolicy {
	t.Helper()
	list := make([]any, len(items))
	for i := range items {
		list[i] = items[i]
	}
	out := in.call(t, "statusAggregation", "AggregateStatus", template, list)
	var p v1alpha1.TrafficPolicy
	b, _ := json.Marshal(out)
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("the aggregate is not a TrafficPolicy: %v\n%s", err, b)
	}
	return &p
}

// fixture creates an Ingress and a policy of one ramp step on it.
func fixture(t *testing.T, c client.Client, ns string) *v1alpha1.TrafficPolicy {
	t.Helper()
	prefix := networkingv1.PathTypePrefix
	policy := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
		Spec: v1alpha1.TrafficPolicySpec{TargetRefs: []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "api"}},
			Ramp: &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{AllowRegions: []string{"AU"}, Hold: metav1.Duration{Duration: 5 * time.Minute}}}}}}
	fixtures.Create(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
			Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: "api.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
				}}}}}}},
		policy)
	return policy
}

func conditionIs(p *v1alpha1.TrafficPolicy, t string, s metav1.ConditionStatus) bool {
	c := meta.FindStatusCondition(p.Status.Conditions, t)
	return c != nil && c.Status == s
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
