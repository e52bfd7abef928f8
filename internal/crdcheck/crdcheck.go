// Package crdcheck validates TrafficPolicy objects in-process against the generated CRD, with the
// API server's own libraries: unknown fields pruned, defaults filled in, the OpenAPI schema and
// every CEL rule checked. It answers what `kubectl apply` would, without an API server, so fuzz
// targets can explore what the CRD accepts.
package crdcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"

	"floodgate.dev/floodgate/config/crd"
)

// Validator checks objects against one version of a CRD.
type Validator struct {
	structural *schema.Structural
	schema     validation.SchemaValidator
	cel        *cel.Validator
}

// TrafficPolicy is the validator of trafficpolicies.traffic.floodgate.dev, version v1alpha1.
func TrafficPolicy() (*Validator, error) {
	crds, err := crd.Load()
	if err != nil {
		return nil, err
	}
	for _, c := range crds {
		if c.Name != "trafficpolicies.traffic.floodgate.dev" {
			continue
		}
		for _, v := range c.Spec.Versions {
			if v.Name == "v1alpha1" && v.Schema != nil {
				return New(v.Schema.OpenAPIV3Schema)
			}
		}
	}
	return nil, fmt.Errorf("the embedded CRDs have no trafficpolicies v1alpha1 schema")
}

// New builds a validator from a CRD version's schema.
func New(v1 *apiextensionsv1.JSONSchemaProps) (*Validator, error) {
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1, internal, nil); err != nil {
		return nil, fmt.Errorf("converting the schema: %w", err)
	}
	structural, err := schema.NewStructural(internal)
	if err != nil {
		return nil, fmt.Errorf("the schema is not structural: %w", err)
	}
	sv, _, err := validation.NewSchemaValidator(internal)
	if err != nil {
		return nil, fmt.Errorf("building the schema validator: %w", err)
	}
	return &Validator{structural: structural, schema: sv, cel: cel.NewValidator(structural, true, celconfig.PerCallLimit)}, nil
}

// Check prunes unknown fields from obj, fills in defaults (in place, as the API server does) and
// returns every validation error: empty when the API server would accept it.
func (v *Validator) Check(ctx context.Context, obj map[string]any) field.ErrorList {
	// Numbers as the API server decodes them: integers as int64 (a YAML decoder gives float64).
	data, err := json.Marshal(obj)
	if err != nil {
		return field.ErrorList{field.Invalid(nil, obj, err.Error())}
	}
	decoded := map[string]any{}
	if err := utiljson.Unmarshal(data, &decoded); err != nil {
		return field.ErrorList{field.Invalid(nil, obj, err.Error())}
	}
	clear(obj)
	maps.Copy(obj, decoded)
	pruning.Prune(obj, v.structural, true)
	defaulting.Default(obj, v.structural)
	errs := validation.ValidateCustomResource(nil, obj, v.schema)
	celErrs, _ := v.cel.Validate(ctx, nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}
