// Package controlplane starts an embedded Kubernetes control plane (envtest: a real
// kube-apiserver and etcd) with Floodgate's CRDs installed, for tests and drills.
package controlplane

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"floodgate.dev/floodgate/config/crd"
)

// K8sVersion is the version of the envtest binaries (kept in step with the Makefile).
const K8sVersion = "1.37.2"

// ControlPlane is a running embedded control plane.
type ControlPlane struct {
	Env *envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// AssetsDir holds kube-apiserver, etcd and (when built) a matching kubectl.
	AssetsDir string
}

// Start starts the control plane and installs Floodgate's CRDs, and those in the files named
// (other projects' kinds: KEDA's ScaledObject).
func Start(crdFiles ...string) (*ControlPlane, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	crds, err := CRDs()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{CRDs: crds, Paths: crdFiles, ErrorIfPathMissing: true},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the embedded control plane (assets in %s): %w", assets, err)
	}
	return &ControlPlane{Env: env, Config: cfg, AssetsDir: assets}, nil
}

// Stop stops the control plane.
func (c *ControlPlane) Stop() error { return c.Env.Stop() }

// Kubeconfig writes a kubeconfig for an administrator and returns its path.
func (c *ControlPlane) Kubeconfig(dir string) (string, error) {
	user, err := c.Env.AddUser(envtest.User{Name: "responder", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("adding a user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("rendering a kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// Kubectl is the kubectl matching the API server, or the one on PATH.
func (c *ControlPlane) Kubectl() string {
	if p := filepath.Join(c.AssetsDir, "kubectl"); isExecutable(p) {
		return p
	}
	return "kubectl"
}

// CRDs decodes the embedded CRDs.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) { return crd.Load() }

// AssetsDir finds kube-apiserver and etcd: KUBEBUILDER_ASSETS, the user-level cache, or (from
// a checkout) hack/envtest-assets.sh, which fetches or builds them once.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" && hasAssets(dir) {
		return dir, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	if dir := filepath.Join(cache, "floodgate", "envtest", K8sVersion); hasAssets(dir) {
		return dir, nil
	}
	if script, ok := findUp("hack/envtest-assets.sh"); ok {
		cmd := exec.Command("bash", script)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("%s: %w", script, err)
		}
		if dir := strings.TrimSpace(string(out)); hasAssets(dir) {
			return dir, nil
		}
	}
	return "", errors.New("kube-apiserver and etcd not found: set KUBEBUILDER_ASSETS, or run `make envtest-assets` in a Floodgate checkout")
}

func hasAssets(dir string) bool {
	return isExecutable(filepath.Join(dir, "kube-apiserver")) && isExecutable(filepath.Join(dir, "etcd"))
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func findUp(rel string) (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if p := filepath.Join(dir, rel); isExecutable(p) || fileExists(p) {
			return p, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
