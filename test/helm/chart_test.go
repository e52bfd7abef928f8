// Package helm tests the Helm chart (charts/floodgate) with a real helm (built from its Go module,
// pinned in the Makefile) and a real API server: it lints, renders, matches what config/ and
// controller-gen generate, sets every manager flag, and is applied with server-side dry-run into a
// namespace that enforces the restricted Pod Security profile, with zero warnings.
package helm

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/registered"
)

var (
	root  = filepath.Join("..", "..")
	chart = filepath.Join(root, "charts", "floodgate")
)

// helmPath is the pinned helm: $HELM (make test sets it), else hack/go-tool.sh's cached build.
func helmPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	out, err := exec.Command("bash", filepath.Join(root, "hack", "go-tool.sh"), "helm", "helm.sh/helm/v3/cmd/helm", "v3.22.0").Output()
	if err != nil {
		t.Fatalf("helm: %v (run make helm)", err)
	}
	return strings.TrimSpace(string(out))
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helmPath(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// render is the chart rendered into floodgate-system with the values set.
func render(t *testing.T, set ...string) (string, []*unstructured.Unstructured) {
	t.Helper()
	args := []string{"template", "floodgate", chart, "--namespace", "floodgate-system", "--kube-version", controlplane.K8sVersion}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out := helm(t, args...)
	return out, decode(t, out)
}

func decode(t *testing.T, text string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		if m != nil {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func TestTheChartLints(t *testing.T) {
	out := helm(t, "lint", "--strict", chart, "--kube-version", controlplane.K8sVersion)
	if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
		t.Fatal(out)
	}
	helm(t, "lint", "--strict", chart, "--kube-version", controlplane.K8sVersion, "--set", "watchNamespaces={edge}", "--set", "metrics.serviceMonitor.enabled=true")
}

// TestTheChartCarriesWhatConfigAndControllerGenGenerate: the CRD, the manager's ClusterRole and the
// dashboard are copies (make manifests refreshes them), and every other RBAC object says what
// config/ says: a drift fails here.
func TestTheChartCarriesWhatConfigAndControllerGenGenerate(t *testing.T) {
	for chartFile, source := range map[string]string{
		"traffic.floodgate.dev_trafficpolicies.yaml": filepath.Join("config", "crd", "bases", "traffic.floodgate.dev_trafficpolicies.yaml"),
		"role.yaml":      filepath.Join("config", "rbac", "role.yaml"),
		"floodgate.json": filepath.Join("config", "grafana", "floodgate.json"),
	} {
		mine, err := os.ReadFile(filepath.Join(chart, "files", chartFile))
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := os.ReadFile(filepath.Join(root, source))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mine, theirs) {
			t.Errorf("charts/floodgate/files/%s differs from %s: run make manifests", chartFile, source)
		}
	}
	_, objs := render(t)
	crd := find(objs, "CustomResourceDefinition", "trafficpolicies.traffic.floodgate.dev")
	if crd == nil || crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Fatalf("the CRD must be a template Helm keeps on uninstall: %v", crd.GetAnnotations())
	}
	generated := decode(t, readAll(t, filepath.Join(root, "config", "crd", "bases", "traffic.floodgate.dev_trafficpolicies.yaml")))[0]
	if !equality.Semantic.DeepEqual(crd.Object["spec"], generated.Object["spec"]) {
		t.Error("the chart's CRD spec is not controller-gen's")
	}
	var config []*unstructured.Unstructured
	for _, f := range []string{"rbac/role.yaml", "rbac/responder_role.yaml", "rbac/leader_election_role.yaml", "shed/shed.yaml"} {
		config = append(config, decode(t, readAll(t, filepath.Join(root, "config", f)))...)
	}
	for _, want := range config {
		if want.GetKind() != "ClusterRole" && want.GetKind() != "Role" {
			continue
		}
		got := find(objs, want.GetKind(), want.GetName())
		if got == nil {
			t.Errorf("the chart has no %s %s", want.GetKind(), want.GetName())
			continue
		}
		if !equality.Semantic.DeepEqual(got.Object["rules"], want.Object["rules"]) {
			t.Errorf("%s %s: the chart's rules differ from config/'s:\n%v\n%v", want.GetKind(), want.GetName(), got.Object["rules"], want.Object["rules"])
		}
	}
}

// TestEveryManagerFlagIsAValue: each flag the manager has is set by the chart from a value (or,
// where said, set otherwise).
func TestEveryManagerFlagIsAValue(t *testing.T) {
	help, _ := exec.Command("go", "run", filepath.Join(root, "cmd", "manager"), "--help").CombinedOutput()
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(string(help), -1)
	if len(flags) < 15 {
		t.Fatalf("the manager's flags could not be read:\n%s", help)
	}
	otherwise := map[string]string{
		"kubeconfig":               "in a cluster the manager uses its ServiceAccount",
		"shed-redirect-hosts":      "set from the floodgate-config ConfigMap (shedRedirectHosts), through its environment variable",
		"regex-header-controllers": "set from the floodgate-config ConfigMap (manager.regexHeaderControllers), through its environment variable",
		"data-plane-controllers":   "set from the floodgate-config ConfigMap (manager.dataPlaneControllers), through its environment variable",
		"zap-devel":                "manager.extraArgs", "zap-encoder": "manager.extraArgs",
		"zap-stacktrace-level": "manager.extraArgs", "zap-time-encoding": "manager.extraArgs",
	}
	_, objs := render(t)
	args := fmt.Sprint(find(objs, "Deployment", "floodgate-manager").Object["spec"].(map[string]any)["template"])
	for _, f := range flags {
		if otherwise[f[1]] == "" && !strings.Contains(args, "--"+f[1]+"=") {
			t.Errorf("the chart does not set the manager flag --%s", f[1])
		}
	}
}

func TestOptionalPartsRenderWhenAsked(t *testing.T) {
	_, objs := render(t, "watchNamespaces={edge,shop}", "metrics.serviceMonitor.enabled=true", "priorityClass.create=true",
		"priorityClass.name=floodgate-critical", "shed.hpa.enabled=false", "rbac.create=true")
	for _, want := range [][2]string{{"ServiceMonitor", "floodgate-manager"}, {"PriorityClass", "floodgate-critical"},
		{"Role", "floodgate-shed-backend"}} {
		if find(objs, want[0], want[1]) == nil {
			t.Errorf("no %s %s", want[0], want[1])
		}
	}
	bindings := 0
	for _, o := range objs {
		if o.GetKind() == "ClusterRoleBinding" {
			t.Errorf("namespaced mode binds nothing cluster-wide: %s", o.GetName())
		}
		if o.GetKind() == "RoleBinding" && (o.GetNamespace() == "edge" || o.GetNamespace() == "shop") {
			bindings++
		}
	}
	if bindings != 4 {
		t.Errorf("%d RoleBindings in the watched namespaces, want 4 (manager and shed in each)", bindings)
	}
	if find(objs, "HorizontalPodAutoscaler", "floodgate-shed") != nil {
		t.Error("shed.hpa.enabled=false still renders the HPA")
	}
	dash := find(objs, "ConfigMap", "floodgate-dashboard")
	if dash == nil || dash.GetLabels()["grafana_dashboard"] != "1" ||
		dash.Object["data"].(map[string]any)["floodgate.json"] != strings.TrimRight(readAll(t, filepath.Join(root, "config", "grafana", "floodgate.json")), "\n") {
		t.Error("the dashboard ConfigMap must carry the sidecar label and the dashboard as it is in config/grafana")
	}
}

// TestTheAPIServerAcceptsTheChartInARestrictedNamespaceWithoutWarnings applies the rendered chart
// with server-side dry-run (real kubectl), cluster-wide and namespaced.
func TestTheAPIServerAcceptsTheChartInARestrictedNamespaceWithoutWarnings(t *testing.T) {
	cp, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	dir := t.TempDir()
	kubeconfig, err := cp.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	kubectl := func(stdin string, args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(cp.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	namespaces := `apiVersion: v1
kind: Namespace
metadata:
  name: floodgate-system
  labels: {pod-security.kubernetes.io/enforce: restricted, pod-security.kubernetes.io/warn: restricted, pod-security.kubernetes.io/audit: restricted}
---
apiVersion: v1
kind: Namespace
metadata: {name: edge}
`
	if out, errOut, err := kubectl(namespaces, "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	for name, set := range map[string][]string{
		"cluster-wide": nil,
		"namespaced":   {"watchNamespaces={edge}", "priorityClass.create=true", "priorityClass.name=floodgate-critical"},
	} {
		t.Run(name, func(t *testing.T) {
			rendered, objs := render(t, set...)
			out, errOut, err := kubectl(rendered, "apply", "--server-side", "--dry-run=server", "--field-manager=helm", "-f", "-")
			if err != nil {
				t.Fatalf("the API server refused the chart: %v\n%s%s", err, out, errOut)
			}
			if strings.Contains(strings.ToLower(errOut), "warning") {
				t.Fatalf("warnings:\n%s", errOut)
			}
			if n := strings.Count(out, "serverside-applied (server dry run)"); n != len(objs) {
				t.Fatalf("%d of %d objects dry-run applied:\n%s%s", n, len(objs), out, errOut)
			}
		})
	}
}

func readAll(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTheChartsDataPlaneControllersAreWhatTheManagerReads: manager.dataPlaneControllers lands in
// floodgate-config as the manager's --data-plane-controllers (and a preview) parses it.
func TestTheChartsDataPlaneControllersAreWhatTheManagerReads(t *testing.T) {
	_, objs := render(t, `manager.dataPlaneControllers.k8s\.io/ingress-nginx=traefik`, `manager.dataPlaneControllers.example\.com/gw=envoy-gateway`)
	cm := find(objs, "ConfigMap", registered.ConfigMapName)
	if cm == nil {
		t.Fatal("no floodgate-config ConfigMap")
	}
	v, _ := cm.Object["data"].(map[string]any)[registered.KeyDataPlaneControllers].(string)
	got, err := registered.ParseDataPlaneControllers(v)
	want := map[string]provider.DataPlane{"k8s.io/ingress-nginx": "traefik", "example.com/gw": "envoy-gateway"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("floodgate-config says %s=%q: read as %v, %v; want %v", registered.KeyDataPlaneControllers, v, got, err, want)
	}
}

// TestTheManagerAndTheShedServerShareOneProbeKey: by default the chart makes the probe key's
// Secret, and both Deployments mount it and are told where; confirm.probeKey sets the key;
// confirm.enabled=false renders no Secret and no mount.
func TestTheManagerAndTheShedServerShareOneProbeKey(t *testing.T) {
	_, objs := render(t, "confirm.probeKey=0123456789abcdef-given", "confirm.addresses.traefik=http://traefik.traefik.svc:80")
	secret := find(objs, "Secret", "floodgate-probe-key")
	if secret == nil || secret.Object["data"].(map[string]any)["key"] != base64.StdEncoding.EncodeToString([]byte("0123456789abcdef-given")) {
		t.Fatalf("the probe key's Secret: %v", secret)
	}
	for _, name := range []string{"floodgate-manager", "floodgate-shed"} {
		pod := fmt.Sprint(find(objs, "Deployment", name).Object["spec"].(map[string]any)["template"])
		for _, want := range []string{"--probe-key-file=/etc/floodgate/probe-key/key", "secretName:floodgate-probe-key", "mountPath:/etc/floodgate/probe-key"} {
			if !strings.Contains(pod, want) {
				t.Errorf("%s lacks %s", name, want)
			}
		}
	}
	if manager := fmt.Sprint(find(objs, "Deployment", "floodgate-manager").Object); !strings.Contains(manager, "--confirm-address=traefik=http://traefik.traefik.svc:80") {
		t.Error("the manager is not told confirm.addresses")
	}
	_, objs = render(t, "confirm.enabled=false")
	if find(objs, "Secret", "floodgate-probe-key") != nil || strings.Contains(fmt.Sprint(find(objs, "Deployment", "floodgate-shed").Object), "secretName:floodgate-probe-key") {
		t.Error("confirm.enabled=false still renders the probe key")
	}
}
