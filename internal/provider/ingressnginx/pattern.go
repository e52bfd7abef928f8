package ingressnginx

import (
	"fmt"
	"sort"
	"strings"
)

// MaxPatternBytes caps the generated canary-by-header-pattern. ingress-nginx compiles the pattern
// with PCRE on every request that carries the header (ngx.re.match without the "o" flag), and
// when PCRE cannot compile it (past about 32 KB: "regular expression is too large") it neither
// sheds by header nor applies the weight: the lever fails open. Every ISO 3166 country code fits
// in well under the cap.
const MaxPatternBytes = 4096

// RegionsThatFit is how many of the allowed codes, in sorted order, make a pattern within
// MaxPatternBytes.
func RegionsThatFit(allowed []string) int {
	sorted := append([]string(nil), allowed...)
	sort.Strings(sorted)
	return sort.Search(len(sorted)+1, func(n int) bool {
		return n > 0 && len(ComplementPattern(sorted[:n])) > MaxPatternBytes
	}) - 1
}

// ComplementPattern returns a regular expression that matches every header value that is NOT one
// of the allowed region codes: the canary routes what it matches to the shed backend, so only the
// allowed regions reach the main backend.
//
// ingress-nginx validates the pattern on the Go side with a restricted character set that has no
// '!' (so no negative lookahead) and no ',' (so no {m,n}); the complement is therefore written as
// a positive expression over the trie of the allowed codes: at each prefix, either a character
// that leads to no allowed code (then anything), or a character that does, followed by the
// complement below it; a prefix that is not itself an allowed code also matches as it is.
// ingress-nginx matches the header with PCRE without anchoring, so the pattern is anchored.
// Codes must match v1alpha1.RegionCodePattern (A-Z, 0-9, '-'); nothing else can reach a pattern.
func ComplementPattern(allowed []string) string {
	root := &trieNode{}
	for _, code := range allowed {
		root.insert(code)
	}
	body, optional := root.complement()
	if optional {
		return "^(" + body + ")?$"
	}
	return "^(" + body + ")$"
}

type trieNode struct {
	terminal bool
	children map[byte]*trieNode
}

func (n *trieNode) insert(code string) {
	for i := 0; i < len(code); i++ {
		if n.children == nil {
			n.children = map[byte]*trieNode{}
		}
		child, ok := n.children[code[i]]
		if !ok {
			child = &trieNode{}
			n.children[code[i]] = child
		}
		n = child
	}
	n.terminal = true
}

// complement returns the alternatives that match every non-empty suffix leading out of the set
// from this node, and whether the empty suffix also leaves the set (this prefix is not a code).
func (n *trieNode) complement() (body string, emptyMatches bool) {
	if len(n.children) == 0 {
		return ".+", !n.terminal
	}
	keys := make([]byte, 0, len(n.children))
	for k := range n.children {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })

	var class strings.Builder
	alts := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		class.WriteString(classChar(k))
	}
	alts = append(alts, "[^"+class.String()+"].*")
	// Characters whose subtrees have the same complement share one alternative, through a
	// character class: every two-letter country code under one first letter is "[A-Z](.+)",
	// not 26 alternatives. A shorter pattern is less for the ingress controller to compile.
	type branch struct {
		chars    string
		sub      string
		optional bool
	}
	var branches []*branch
	bySub := map[string]*branch{}
	for _, k := range keys {
		sub, optional := n.children[k].complement()
		key := fmt.Sprintf("%t/%s", optional, sub)
		if b, ok := bySub[key]; ok {
			b.chars += classChar(k)
			continue
		}
		b := &branch{chars: classChar(k), sub: sub, optional: optional}
		bySub[key] = b
		branches = append(branches, b)
	}
	for _, b := range branches {
		head := b.chars
		if len(b.chars) > 1 && b.chars != `\-` {
			head = "[" + b.chars + "]"
		}
		alt := head + "(" + b.sub + ")"
		if b.optional {
			alt += "?"
		}
		alts = append(alts, alt)
	}
	return strings.Join(alts, "|"), !n.terminal
}

func classChar(c byte) string {
	if c == '-' {
		return `\-`
	}
	return string(c)
}
