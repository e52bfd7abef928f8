// Package crd embeds the generated CustomResourceDefinitions, so drills and tests install the
// same CRDs `make install` does.
package crd

import "embed"

// Bases holds bases/*.yaml as controller-gen wrote them.
//
//go:embed bases/*.yaml
var Bases embed.FS
