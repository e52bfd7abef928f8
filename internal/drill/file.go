// Package drill rehearses a runbook on an embedded control plane: the manager runs in-process on
// a time-warped clock, the runbook's steps run one by one (the same plugin code a responder runs),
// and a timeline says what was flipped, what changed on each object and what was checked.
package drill

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// File is one drill.
type File struct {
	// Name says what is rehearsed.
	Name string `json:"name"`
	// Description is printed under the name.
	Description string `json:"description,omitempty"`
	// Start is the drill clock's start (default 2024-11-12T09:00:00Z).
	Start *metav1.Time `json:"start,omitempty"`
	// Setup are objects created before the first step.
	Setup []map[string]any `json:"setup,omitempty"`
	// SetupFiles are manifests (relative to the drill file) created before the first step, so a
	// team can rehearse its real policies.
	SetupFiles []string `json:"setupFiles,omitempty"`
	// CRDs are CustomResourceDefinition manifests (relative to the drill file) installed before
	// the manager starts: the kinds of other projects a drill uses (KEDA's ScaledObject).
	CRDs []string `json:"crds,omitempty"`
	// Gateway, when set, plays a Gateway API implementation (none runs in a drill): it reports
	// every HTTPRoute Accepted, with its references resolved, at its current generation.
	Gateway *Gateway `json:"gateway,omitempty"`
	// Clusters, when set, are the clusters the drill rehearses on, each its own embedded control
	// plane and manager with the CRDs and setup above (regional clusters: syd, sin, fra). A run
	// step reaches them as `kubectl floodgate --context a,b,c` does; a step names the ones it
	// concerns in its own clusters (default: every one).
	Clusters []string `json:"clusters,omitempty"`
	// Steps are run in order; the drill stops at the first failed expectation.
	Steps []Step `json:"steps"`

	path  string
	setup []*unstructured.Unstructured
}

// Gateway is the gateway a drill plays.
type Gateway struct {
	// ControllerName is the GatewayClass controller it reports as (default Envoy Gateway's).
	ControllerName string `json:"controllerName,omitempty"`
}

// Step is one runbook step: exactly one of its fields is set.
type Step struct {
	// Name labels the step in the timeline.
	Name string `json:"name,omitempty"`
	// Clusters are the drill's clusters the step concerns (default: every one of File.Clusters):
	// a run is made with --context naming them, the other steps are made on each.
	Clusters []string `json:"clusters,omitempty"`
	// Run is a plugin command, as a responder types it: "kubectl floodgate shed api -n edge".
	Run string `json:"run,omitempty"`
	// ExpectError, with run, expects the command to fail with a message containing this text.
	ExpectError string `json:"expectError,omitempty"`
	// Delete removes an object, as `kubectl delete` would.
	Delete *Ref `json:"delete,omitempty"`
	// Patch changes an object (merge patch), as a raw `kubectl patch` would.
	Patch *Patch `json:"patch,omitempty"`
	// Apply creates or replaces objects mid-drill.
	Apply []map[string]any `json:"apply,omitempty"`
	// Advance moves the drill clock forward (requeues due within it fire; nothing sleeps).
	Advance *metav1.Duration `json:"advance,omitempty"`
	// Expect checks an object, waiting up to its timeout.
	Expect *Expect `json:"expect,omitempty"`
}

// Ref names an object.
type Ref struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// Patch is a merge patch of one object, or a JSON patch (operations), as `kubectl patch
// --type=json` sends: the way to edit one element of a list (an HTTPRoute's rules).
type Patch struct {
	Ref `json:",inline"`
	// Subresource "status" patches the status, standing in for the object's own controller
	// (a drill runs no Deployment controller).
	Subresource string         `json:"subresource,omitempty"`
	Patch       map[string]any `json:"patch,omitempty"`
	// Operations are RFC 6902 operations ({op, path, value}), instead of Patch.
	Operations []map[string]any `json:"operations,omitempty"`
}

// Expect checks one object.
type Expect struct {
	Ref `json:",inline"`
	// Fields maps dotted paths (status.phase, metadata.annotations.KEY) to expected values;
	// null expects the field to be absent.
	Fields map[string]any `json:"fields,omitempty"`
	// Conditions maps condition types to expected statuses (True, False) or STATUS/Reason.
	Conditions map[string]string `json:"conditions,omitempty"`
	// Absent expects the object not to exist.
	Absent bool `json:"absent,omitempty"`
	// SameAsSetup expects labels, annotations (Floodgate's own excluded) and spec to equal what
	// they were right after setup: the exact restore.
	SameAsSetup bool `json:"sameAsSetup,omitempty"`
	// Timeout is how long (wall time) to wait for the expectation; default 10s.
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// Load reads a drill file and the manifests it points at.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.path = path
	if f.Name == "" {
		f.Name = filepath.Base(path)
	}
	if len(f.Steps) == 0 {
		return nil, fmt.Errorf("%s: a drill needs steps", path)
	}
	for i, s := range f.Steps {
		n := 0
		for _, set := range []bool{s.Run != "", s.Patch != nil, s.Apply != nil, s.Delete != nil, s.Advance != nil, s.Expect != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("%s: step %d must have exactly one of run, patch, apply, delete, advance, expect", path, i+1)
		}
		if s.Patch != nil && (s.Patch.Patch == nil) == (s.Patch.Operations == nil) {
			return nil, fmt.Errorf("%s: step %d: a patch has either patch (merge) or operations (JSON patch)", path, i+1)
		}
		if s.ExpectError != "" && s.Run == "" {
			return nil, fmt.Errorf("%s: step %d: expectError goes with run", path, i+1)
		}
		for _, c := range s.Clusters {
			if !slices.Contains(f.Clusters, c) {
				return nil, fmt.Errorf("%s: step %d names cluster %q, which is not among the drill's clusters %v", path, i+1, c, f.Clusters)
			}
		}
	}
	for i, c := range f.Clusters {
		if c == "" || slices.Contains(f.Clusters[:i], c) {
			return nil, fmt.Errorf("%s: clusters must be distinct names: %v", path, f.Clusters)
		}
	}
	for i, rel := range f.CRDs {
		f.CRDs[i] = filepath.Join(filepath.Dir(path), rel)
	}
	for _, obj := range f.Setup {
		f.setup = append(f.setup, &unstructured.Unstructured{Object: obj})
	}
	for _, rel := range f.SetupFiles {
		objs, err := readManifests(filepath.Join(filepath.Dir(path), rel))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		f.setup = append(f.setup, objs...)
	}
	return &f, nil
}

func readManifests(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(obj) > 0 {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}
