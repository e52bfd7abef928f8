// Package krew tests the release the way a responder installs the plugin: hack/release.sh builds
// the archive and the krew manifest, a real krew (built from its Go module, pinned in the
// Makefile) installs it into a temporary KREW_ROOT, and the real kubectl finds it on PATH.
package krew

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/internal/controlplane"
)

var root = filepath.Join("..", "..")

// tool is a pinned tool: $ENV (make test sets it), else hack/go-tool.sh's cached build.
func tool(t *testing.T, env, name, pkg, version string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	out, err := exec.Command("bash", filepath.Join(root, "hack", "go-tool.sh"), name, pkg, version).Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Stdin = append(os.Environ(), env...), &out, &out, strings.NewReader("")
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version   string `json:"version"`
		Platforms []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

func TestTheReleaseInstallsWithKrewAndPrintsItsVersionThroughKubectl(t *testing.T) {
	const version = "v0.1.0-test"
	dist := t.TempDir()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	// The plugin alone, for this machine, without -trimpath (it shares go test's build cache):
	// make release builds both binaries for the four platforms the same way.
	out := run(t, []string{"VERSION=" + version, "PLATFORMS=" + platform, "COMMANDS=kubectl-floodgate", "BUILDFLAGS=", "DIST=" + dist},
		"bash", filepath.Join(root, "hack", "release.sh"))
	manifestPath := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])

	archive := filepath.Join(dist, fmt.Sprintf("floodgate_%s_%s_%s.tar.gz", version, runtime.GOOS, runtime.GOARCH))
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	sums, _ := os.ReadFile(filepath.Join(dist, "sha256sums.txt"))
	if !strings.Contains(string(sums), hex.EncodeToString(sum[:])+"  "+filepath.Base(archive)) {
		t.Fatalf("sha256sums.txt does not list the archive's sum:\n%s", sums)
	}
	raw, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "floodgate" ||
		m.Spec.Version != version || len(m.Spec.Platforms) != 1 || m.Spec.Platforms[0].SHA256 != hex.EncodeToString(sum[:]) ||
		m.Spec.Platforms[0].Selector.MatchLabels["os"] != runtime.GOOS || m.Spec.Platforms[0].Bin != "kubectl-floodgate" ||
		!strings.HasSuffix(m.Spec.Platforms[0].URI, "/"+version+"/"+filepath.Base(archive)) {
		t.Fatalf("manifest:\n%s", raw)
	}

	// krew as a responder has it: the kubectl-krew plugin, run through the real kubectl.
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		// The kubectl built beside the envtest binaries, where none is installed.
		dir, aerr := controlplane.AssetsDir()
		if kubectl = filepath.Join(dir, "kubectl"); aerr != nil {
			t.Fatalf("the real kubectl is needed: none on PATH (%v) nor with the envtest binaries (%v)", err, aerr)
		}
	}
	krewRoot, plugins := t.TempDir(), t.TempDir()
	krew, err := os.ReadFile(tool(t, "KREW", "krew", "sigs.k8s.io/krew/cmd/krew", "v0.4.3"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plugins, "kubectl-krew"), krew, 0o755); err != nil {
		t.Fatal(err)
	}
	path := "PATH=" + strings.Join([]string{filepath.Join(krewRoot, "bin"), plugins, os.Getenv("PATH")}, string(os.PathListSeparator))
	env := []string{"KREW_ROOT=" + krewRoot, path}
	run(t, env, kubectl, "krew", "install", "--manifest="+manifestPath, "--archive="+archive)
	if _, err := os.Stat(filepath.Join(krewRoot, "receipts", "floodgate.yaml")); err != nil {
		t.Fatalf("krew kept no receipt of the install: %v", err)
	}
	got := run(t, env, kubectl, "floodgate", "version")
	if !strings.HasPrefix(got, "kubectl-floodgate "+version+" (") {
		t.Fatalf("kubectl floodgate version: %q", got)
	}
}
