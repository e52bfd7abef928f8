// Package crd embeds the generated CustomResourceDefinitions, so drills and tests install the
// same CRDs `make install` does.
package crd

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Bases holds bases/*.yaml as controller-gen wrote them.
//
//go:embed bases/*.yaml
var Bases embed.FS

// Load decodes every embedded CustomResourceDefinition.
func Load() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	err := fs.WalkDir(Bases, "bases", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := Bases.ReadFile(path)
		if err != nil {
			return err
		}
		var c apiextensionsv1.CustomResourceDefinition
		if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(&c); err != nil {
			return fmt.Errorf("decoding %s: %w", path, err)
		}
		out = append(out, &c)
		return nil
	})
	return out, err
}
