package manifest

import (
	_ "embed"
	"slices"
)

//go:embed schema.json
var schemaJSON []byte

// Schema returns the JSON Schema (draft 2020-12) of the manifest: the
// shape of every field, with descriptions, enumerations and the formats
// of durations, sizes and fuel, for editors to complete and check
// manifests. Its description says how a manifest refers to it (a
// "# yaml-language-server: $schema=..." comment). It checks the shape
// only; [Load] checks everything.
func Schema() []byte { return slices.Clone(schemaJSON) }
