// Package restore keeps the restore record: the original value of every field Floodgate changes
// on an object it does not own, saved on that object before the first change, so the original
// can be put back exactly when the lever is released.
//
// The record lives in an annotation Floodgate owns on the changed object (it survives the
// operator and the policy) and a copy is kept in the policy's status. On restore, a field that
// still holds Floodgate's value gets its original back; a field someone else changed meanwhile is
// kept and reported. A record that cannot be decoded is an error, never a guess.
package restore

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// Annotation holds the restore record on a changed object.
const Annotation = "traffic.floodgate.dev/restore"

// ErrCorrupt is wrapped by every error about a record that cannot be trusted.
var ErrCorrupt = errors.New("corrupt restore record")

// Record lists the fields one policy changed on one object.
type Record struct {
	// Policy is namespace/name of the policy that made the changes.
	Policy string `json:"policy"`
	// Kind and UID name the object the record was written on: a copy of the annotation on
	// another object (KEDA copies a ScaledObject's annotations onto the HPA it generates) does
	// not describe that object. Empty in records written before they were kept.
	Kind string    `json:"kind,omitempty"`
	UID  types.UID `json:"uid,omitempty"`
	// Fields are the changed fields, sorted by path.
	Fields []Field `json:"fields"`
}

// Field is one changed field: where it is, what it was, and what Floodgate set.
type Field struct {
	// Path is the field's place in the object, one key per level
	// (for example ["metadata", "annotations", "nginx.ingress.kubernetes.io/limit-rps"]).
	Path []string `json:"path"`
	// Absent is true when the field did not exist before Floodgate set it.
	Absent bool `json:"absent,omitempty"`
	// Original is the value before Floodgate's first change (JSON), unless Absent.
	Original json.RawMessage `json:"original,omitempty"`
	// Set is the value Floodgate set (JSON), as the API server stored it.
	Set json.RawMessage `json:"set"`
}

// Describes reports whether the record was written on obj (not copied onto it from another).
func (r *Record) Describes(obj metav1.Object) bool {
	return r.UID == "" || r.UID == obj.GetUID()
}

// PathString is the path joined with dots, for messages.
func (f Field) PathString() string { return strings.Join(f.Path, ".") }

// CompressedPrefix starts a record that is stored compressed: "gzip:" and the base64 of the
// gzip of its JSON. A record of more than CompressAbove bytes of JSON is stored so (an
// HTTPRoute's record holds the user's rules and Floodgate's: uncompressed, with a route of about
// 150 KB of rules, it would take the annotations past the API server's 256 KiB). A JSON record
// starts with '{', so the two never mix up; both are read back.
const CompressedPrefix = "gzip:"

// CompressAbove is the size of a record's JSON above which it is stored compressed.
const CompressAbove = 4096

// MaxRecordBytes bounds a compressed record's JSON once expanded: a record that expands beyond
// it is corrupt, never read on.
const MaxRecordBytes = 4 << 20

// Decode parses and checks a record (JSON, or compressed). Anything that is not a complete
// record is ErrCorrupt.
func Decode(text string) (*Record, error) {
	if rest, ok := strings.CutPrefix(text, CompressedPrefix); ok {
		expanded, err := expand(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if strings.HasPrefix(expanded, CompressedPrefix) {
			return nil, fmt.Errorf("%w: compressed twice", ErrCorrupt)
		}
		text = expanded
	}
	var rec Record
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrCorrupt)
	}
	if rec.Policy == "" || strings.Count(rec.Policy, "/") != 1 {
		return nil, fmt.Errorf("%w: policy %q is not namespace/name", ErrCorrupt, rec.Policy)
	}
	seen := map[string]bool{}
	for i, f := range rec.Fields {
		if len(f.Path) == 0 {
			return nil, fmt.Errorf("%w: field %d has no path", ErrCorrupt, i)
		}
		for _, k := range f.Path {
			if k == "" {
				return nil, fmt.Errorf("%w: field %d has an empty path element", ErrCorrupt, i)
			}
		}
		key := f.PathString()
		if seen[key] {
			return nil, fmt.Errorf("%w: field %s is listed twice", ErrCorrupt, key)
		}
		seen[key] = true
		if !validJSON(f.Set) {
			return nil, fmt.Errorf("%w: field %s has no value set", ErrCorrupt, key)
		}
		if f.Absent == (len(f.Original) > 0) {
			return nil, fmt.Errorf("%w: field %s must have either an original value or absent", ErrCorrupt, key)
		}
		if !f.Absent && !validJSON(f.Original) {
			return nil, fmt.Errorf("%w: field %s has an invalid original value", ErrCorrupt, key)
		}
	}
	return &rec, nil
}

func validJSON(raw json.RawMessage) bool {
	return len(raw) > 0 && json.Valid(raw) && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// Encode renders the record deterministically (fields sorted by path, values canonical), so an
// unchanged record encodes to the same bytes and causes no write.
func (r *Record) Encode() string {
	out := Record{Policy: r.Policy, Kind: r.Kind, UID: r.UID, Fields: make([]Field, 0, len(r.Fields))}
	for _, f := range r.Fields {
		c := Field{Path: f.Path, Absent: f.Absent, Set: canonical(f.Set)}
		if !f.Absent {
			c.Original = canonical(f.Original)
		}
		out.Fields = append(out.Fields, c)
	}
	sort.Slice(out.Fields, func(i, j int) bool { return out.Fields[i].PathString() < out.Fields[j].PathString() })
	b, err := json.Marshal(out)
	if err != nil {
		// Only valid JSON values are stored in a record; Marshal cannot fail on them.
		panic(fmt.Sprintf("restore: encoding a record: %v", err))
	}
	if len(b) <= CompressAbove {
		return string(b)
	}
	return CompressedPrefix + compress(b)
}

// compress is the base64 of the gzip of b, the same bytes for the same b (no name, no time).
func compress(b []byte) string {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		panic(fmt.Sprintf("restore: compressing a record: %v", err))
	}
	if _, err := w.Write(b); err != nil {
		panic(fmt.Sprintf("restore: compressing a record: %v", err))
	}
	if err := w.Close(); err != nil {
		panic(fmt.Sprintf("restore: compressing a record: %v", err))
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// expand reads a compressed record's JSON, at most MaxRecordBytes of it.
func expand(text string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return "", fmt.Errorf("compressed record: %w", err)
	}
	r, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return "", fmt.Errorf("compressed record: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxRecordBytes+1))
	if err != nil {
		return "", fmt.Errorf("compressed record: %w", err)
	}
	if len(out) > MaxRecordBytes {
		return "", fmt.Errorf("compressed record expands beyond %d bytes", MaxRecordBytes)
	}
	return string(out), nil
}

// canonical re-encodes a JSON value with sorted keys and no insignificant space.
func canonical(raw json.RawMessage) json.RawMessage {
	var v any
	if err := utiljson.Unmarshal(raw, &v); err != nil {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}

// toJSON encodes a value taken from an unstructured object.
func toJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("restore: encoding an unstructured value: %v", err))
	}
	return b
}

// fromJSON decodes a recorded value into the form unstructured objects hold (int64 for integers).
func fromJSON(raw json.RawMessage) (any, error) {
	var v any
	if err := utiljson.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return v, nil
}

// sameJSON reports whether an unstructured value equals a recorded one.
func sameJSON(v any, raw json.RawMessage) bool {
	return bytes.Equal(canonical(toJSON(v)), canonical(raw))
}
