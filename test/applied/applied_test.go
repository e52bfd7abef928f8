// Package applied proves that restore is byte-exact for objects created the way most users create
// them: with the real `kubectl apply`, whose last-applied-configuration annotation Floodgate's
// cache never holds. An HPA, an Ingress, an HTTPRoute and a ScaledObject, carrying labels and
// annotations of their own, go through ShedAll → Normal and a full ramp, and come back byte-equal (what the
// API server bumps aside: resourceVersion, generation, managedFields; and status, which is the
// controllers'); then a `kubectl apply` of the manifests with a field removed prunes it.
package applied

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/test/crds"
	"floodgate.dev/floodgate/test/fixtures"
)

var env *drill.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "floodgate-applied")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		files, err := crds.Write(dir, crds.KEDA, crds.GatewayAPI)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if env, err = drill.StartEnv(time.Date(2024, 11, 12, 9, 0, 0, 0, time.UTC), files...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer env.Close()
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		go registered.PlayGateways(ctx, env.Client, "", 20*time.Millisecond)
		return m.Run()
	}()
	os.Exit(code)
}

// manifests are the user's objects as they keep them in git. Each object Floodgate edits carries
// labels and annotations of its own (on the Ingress, an ingress-nginx annotation too) beside the
// one kubectl apply adds; each has a field (marked "pruned") the second apply removes.
const manifests = `
apiVersion: v1
kind: Namespace
metadata: {name: NS}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: NS}
spec:
  replicas: 4
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: example/api:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: NS}
spec:
  replicas: 6
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec: {containers: [{name: worker, image: example/worker:1}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: NS
  labels: {app.kubernetes.io/part-of: shop, team: payments}
  annotations: {example.com/owner: "sre@example.com", example.com/runbook: "https://runbooks.example.com/api", nginx.ingress.kubernetes.io/proxy-body-size: 8m}
spec:
  ingressClassName: nginx
  rules:
  - host: NS.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /pruned, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: eg-NS}
spec: {controllerName: gateway.envoyproxy.io/gatewayclass-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: NS}
spec:
  gatewayClassName: eg-NS
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: api
  namespace: NS
  labels: {app.kubernetes.io/part-of: shop, team: payments}
  annotations: {example.com/owner: "sre@example.com", example.com/runbook: "https://runbooks.example.com/route"}
spec:
  parentRefs: [{name: eg}]
  hostnames: [route.NS.example.com]
  rules:
  - backendRefs: [{name: api, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /pruned}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: api
  namespace: NS
  labels: {app.kubernetes.io/part-of: shop, team: payments}
  annotations: {example.com/owner: "sre@example.com", example.com/runbook: "https://runbooks.example.com/hpa"}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 2
  maxReplicas: 10
  behavior:                                 # pruned
    scaleUp: {stabilizationWindowSeconds: 30}  # pruned
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: worker
  namespace: NS
  labels: {app.kubernetes.io/part-of: shop, team: payments}
  annotations: {example.com/owner: "sre@example.com", example.com/runbook: "https://runbooks.example.com/worker"}
spec:
  scaleTargetRef: {name: worker}
  minReplicaCount: 2
  maxReplicaCount: 20
  cooldownPeriod: 120                       # pruned
  triggers: [{type: cpu, metricType: Utilization, metadata: {value: "60"}}]
---
apiVersion: traffic.floodgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: api, namespace: NS}
spec:
  action: Normal
  regionHeader: CF-IPCountry
  targetRefs: [{kind: Ingress, name: api}]
  autoscalerRefs: [{name: api}]
  autoscaling: {releaseAfter: 1m}
  ramp:
    steps:
    - {allowRegions: [AU], perClientRequestsPerSecond: 50, hold: 1m}
    - {admitPercent: 50, hold: 1m}
---
apiVersion: traffic.floodgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: route, namespace: NS}
spec:
  action: Normal
  regionHeader: CF-IPCountry
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]
  autoscalerRefs: [{apiGroup: keda.sh, kind: ScaledObject, name: worker}]
  autoscaling: {releaseAfter: 1m}
  ramp:
    steps:
    - {allowRegions: [AU], hold: 1m}
    - {admitPercent: 50, hold: 1m}
`

// objects are the user's objects a policy edits.
var objects = []struct {
	gvk  schema.GroupVersionKind
	name string
}{
	{schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}, "api"},
	{schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}, "api"},
	{schema.GroupVersionKind{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"}, "api"},
	{schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}, "worker"},
}

func TestObjectsCreatedByKubectlApplyAreRestoredByteForByteAndApplyStillPrunes(t *testing.T) {
	ns := "applied"
	apply(t, ns, manifests)
	eventuallyPolicies(t, ns, "at rest and armed", func(p *v1alpha1.TrafficPolicy) bool {
		return p.Status.Phase == v1alpha1.PhaseNormal && condition(p, v1alpha1.ConditionArmed) == "True"
	})
	setup := snapshot(t, ns)
	for kind, bytes := range setup {
		if !strings.Contains(bytes, "kubectl.kubernetes.io/last-applied-configuration") {
			t.Fatalf("%s was not created by kubectl apply: %s", kind, bytes)
		}
		if !strings.Contains(bytes, `"team":"payments"`) || !strings.Contains(bytes, `"example.com/owner":"sre@example.com"`) {
			t.Fatalf("%s does not carry the user's own labels and annotations: %s", kind, bytes)
		}
	}

	t.Log("ShedAll → Normal")
	setAction(t, ns, v1alpha1.ActionShedAll)
	eventuallyPolicies(t, ns, "shedding on every target, every autoscaler held", func(p *v1alpha1.TrafficPolicy) bool {
		return p.Status.Phase == v1alpha1.PhaseShedding && everyTarget(p, func(t v1alpha1.TargetStatus) bool { return t.Applied.Shed }) &&
			everyAutoscaler(p, func(a v1alpha1.AutoscalerStatus) bool { return a.Held })
	})
	t.Log("mid-incident, the on-call annotates and labels every object with kubectl: no restore removes what Floodgate did not write")
	for _, o := range objects {
		ref := strings.ToLower(o.gvk.Kind) + "." + o.gvk.Group + "/" + o.name
		kubectl(t, "annotate", "-n", ns, ref, onCallAnnotation+"=INC-7")
		kubectl(t, "label", "-n", ns, ref, onCallLabel+"=yes")
	}
	setAction(t, ns, v1alpha1.ActionNormal)
	backAsSetUpWith(t, ns, setup, withoutOnCallMarks(t))
	for kind, bytes := range snapshot(t, ns) {
		if !strings.Contains(bytes, `"`+onCallAnnotation+`":"INC-7"`) || !strings.Contains(bytes, `"`+onCallLabel+`":"yes"`) {
			t.Fatalf("%s lost the on-call's annotation or label at restore: %s", kind, bytes)
		}
	}
	for _, o := range objects {
		ref := strings.ToLower(o.gvk.Kind) + "." + o.gvk.Group + "/" + o.name
		kubectl(t, "annotate", "-n", ns, ref, onCallAnnotation+"-")
		kubectl(t, "label", "-n", ns, ref, onCallLabel+"-")
	}
	backAsSetUp(t, ns, setup)

	t.Log("a full ramp")
	setAction(t, ns, v1alpha1.ActionRamp)
	eventuallyPolicies(t, ns, "ramping", func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseRamping })
	backAsSetUp(t, ns, setup)
	eventuallyPolicies(t, ns, "completed", func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseCompleted })

	t.Log("kubectl apply of the manifests with a field removed prunes it")
	var kept []string
	for _, line := range strings.Split(manifests, "\n") {
		if !strings.Contains(line, "pruned") {
			kept = append(kept, line)
		}
	}
	apply(t, ns, strings.Join(kept, "\n"))
	pruned := snapshot(t, ns)
	for kind, bytes := range pruned {
		if strings.Contains(bytes, "pruned") || strings.Contains(bytes, `"behavior":{"scaleUp"`) || strings.Contains(bytes, `"cooldownPeriod"`) {
			t.Errorf("%s kept a field its manifest no longer has: %s", kind, bytes)
		}
	}
}

// The on-call's own marks, added mid-incident.
const (
	onCallAnnotation = "oncall.example.com/incident"
	onCallLabel      = "oncall.example.com/touched"
)

// withoutOnCallMarks is a snapshot without the on-call's annotation and label.
func withoutOnCallMarks(t *testing.T) func(map[string]string) map[string]string {
	return func(snap map[string]string) map[string]string {
		out := map[string]string{}
		for kind, bytes := range snap {
			var obj map[string]any
			if err := json.Unmarshal([]byte(bytes), &obj); err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: obj}
			unstructured.RemoveNestedField(u.Object, "metadata", "annotations", onCallAnnotation)
			unstructured.RemoveNestedField(u.Object, "metadata", "labels", onCallLabel)
			for _, f := range []string{"annotations", "labels"} { // emptied by the removal: as if never set
				if m, found, _ := unstructured.NestedMap(u.Object, "metadata", f); found && len(m) == 0 {
					unstructured.RemoveNestedField(u.Object, "metadata", f)
				}
			}
			b, err := json.Marshal(u.Object)
			if err != nil {
				t.Fatal(err)
			}
			out[kind] = string(b)
		}
		return out
	}
}

// kubectl runs the real kubectl against the control plane.
func kubectl(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(env.ControlPlane.Kubectl(), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// backAsSetUp advances the drill clock (ramp holds, the autoscalers' release) until every object
// is byte-equal to its setup, and fails on the first difference left when time runs out.
func backAsSetUp(t *testing.T, ns string, setup map[string]string) {
	t.Helper()
	backAsSetUpWith(t, ns, setup, func(m map[string]string) map[string]string { return m })
}

// backAsSetUpWith is backAsSetUp comparing view(snapshot).
func backAsSetUpWith(t *testing.T, ns string, setup map[string]string, view func(map[string]string) map[string]string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		now := view(snapshot(t, ns))
		var diffs []string
		for kind, want := range setup {
			if now[kind] != want {
				diffs = append(diffs, fmt.Sprintf("%s\n  now:   %s\n  setup: %s", kind, now[kind], want))
			}
		}
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back as set up within 60s:\n%s", strings.Join(diffs, "\n"))
		}
		env.Clock.Advance(30 * time.Second)
		time.Sleep(100 * time.Millisecond)
	}
}

// snapshot is each object's stored JSON, read from the API server, without what the API server
// or another controller bumps: resourceVersion, generation, managedFields and status.
func snapshot(t *testing.T, ns string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range objects {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(o.gvk)
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: o.name}, u); err != nil {
			t.Fatal(err)
		}
		unstructured.RemoveNestedField(u.Object, "metadata", "resourceVersion")
		unstructured.RemoveNestedField(u.Object, "metadata", "generation")
		unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
		unstructured.RemoveNestedField(u.Object, "status")
		b, err := json.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		out[o.gvk.Kind] = string(b)
	}
	return out
}

// apply runs the real kubectl apply on the manifests, in namespace ns.
func apply(t *testing.T, ns, yaml string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "manifests.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(yaml, "NS", ns)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(env.ControlPlane.Kubectl(), "--kubeconfig", env.Kubeconfig, "apply", "-f", file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// policies are the manifests' policies: api over the Ingress and the HPA, route over the
// HTTPRoute and the ScaledObject.
var policies = []string{"api", "route"}

// setAction pulls a lever on every policy, with kubectl.
func setAction(t *testing.T, ns string, action v1alpha1.Action) {
	t.Helper()
	for _, name := range policies {
		cmd := exec.Command(env.ControlPlane.Kubectl(), "--kubeconfig", env.Kubeconfig, "-n", ns, "patch", "trafficpolicy", name,
			"--type=merge", "-p", fmt.Sprintf(`{"spec":{"action":%q}}`, action))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl patch: %v\n%s", err, out)
		}
	}
}

// eventuallyPolicies waits until every policy is what ok says.
func eventuallyPolicies(t *testing.T, ns, what string, ok func(*v1alpha1.TrafficPolicy) bool) {
	t.Helper()
	for _, name := range policies {
		t.Logf("awaiting policy %s: %s", name, what)
		fixtures.EventuallyPolicy(t, env.Client, client.ObjectKey{Namespace: ns, Name: name}, ok)
	}
}

// condition is the status of a policy's condition of type typ ("" when it has none).
func condition(p *v1alpha1.TrafficPolicy, typ string) string {
	status, _, _ := strings.Cut(fixtures.Condition(p, typ), " ")
	return status
}

func everyTarget(p *v1alpha1.TrafficPolicy, ok func(v1alpha1.TargetStatus) bool) bool {
	for _, t := range p.Status.Targets {
		if !ok(t) {
			return false
		}
	}
	return len(p.Status.Targets) > 0
}

func everyAutoscaler(p *v1alpha1.TrafficPolicy, ok func(v1alpha1.AutoscalerStatus) bool) bool {
	for _, a := range p.Status.Autoscalers {
		if !ok(a) {
			return false
		}
	}
	return len(p.Status.Autoscalers) > 0
}
