// Package crds embeds the other projects' CRDs Floodgate's tests and drills load (KEDA's
// ScaledObject, Gateway API's standard channel), so a drill rehearsing a live cluster's policy
// installs the kinds it copies without the source tree at hand.
package crds

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed keda/*.yaml gateway-api/*.yaml
var files embed.FS

// Sets of CRDs, by directory.
const (
	KEDA       = "keda"
	GatewayAPI = "gateway-api"
)

// Write writes the CRDs of the sets named into dir and returns their paths.
func Write(dir string, sets ...string) ([]string, error) {
	var paths []string
	for _, set := range sets {
		entries, err := fs.ReadDir(files, set)
		if err != nil {
			return nil, fmt.Errorf("CRD set %s: %w", set, err)
		}
		for _, e := range entries {
			data, err := files.ReadFile(set + "/" + e.Name())
			if err != nil {
				return nil, err
			}
			path := filepath.Join(dir, e.Name())
			if err := os.WriteFile(path, data, 0o644); err != nil {
				return nil, err
			}
			paths = append(paths, path)
		}
	}
	return paths, nil
}
