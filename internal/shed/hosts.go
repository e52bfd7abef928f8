package shed

import "strings"

// How the shed table matches hosts, the way the data planes do: case-insensitively, a trailing
// dot ignored, an exact host before a wildcard, a wildcard before a catch-all. A wildcard
// "*.example.com" routes one more label (an Ingress's rule); for telling which claims overlap it
// is taken to cover any depth (a Gateway API hostname's), so no overlap is missed.

// NormalizeHost is a host as the table keys it: lower case, without a port or a trailing dot.
func NormalizeHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// isWildcard says whether a (normalized) host is a wildcard; its suffix is host[1:].
func isWildcard(host string) bool { return strings.HasPrefix(host, "*.") }

// suffixes are the dotted suffixes of a name, longest first: "a.b.c" → ".b.c", ".c".
func suffixes(name string) []string {
	var out []string
	for i := strings.IndexByte(name, '.'); i >= 0; {
		out = append(out, name[i:])
		j := strings.IndexByte(name[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return out
}

// Overlap says whether two (normalized) hosts can name the same request's host: "" (a
// catch-all) overlaps every host; a wildcard, every host under it and every wildcard of which
// one covers the other.
func Overlap(a, b string) bool {
	switch {
	case a == "" || b == "":
		return true
	case isWildcard(a) && isWildcard(b):
		return strings.HasSuffix(a[1:], b[1:]) || strings.HasSuffix(b[1:], a[1:])
	case isWildcard(a):
		return strings.HasSuffix(b, a[1:])
	case isWildcard(b):
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// CatchAllKey is the index key of a catch-all host.
const CatchAllKey = "*"

// under prefixes the index keys of the hosts below a suffix.
const under = "under:"

// IndexKeys are the keys an object carrying host is indexed under, so that OverlapKeys finds it:
// the host itself ("*" for a catch-all), and, for each dotted suffix it lies under, that suffix.
func IndexKeys(host string) []string {
	host = NormalizeHost(host)
	if host == "" {
		return []string{CatchAllKey}
	}
	keys := []string{host}
	name := host
	if isWildcard(host) {
		name = host[2:]
	}
	for _, s := range suffixes(name) {
		keys = append(keys, under+s)
	}
	return keys
}

// OverlapKeys are the index keys whose objects carry a host overlapping host, and whether host is
// a catch-all (which overlaps every object: no key finds them all).
func OverlapKeys(host string) (keys []string, everything bool) {
	host = NormalizeHost(host)
	if host == "" {
		return nil, true
	}
	keys = []string{host, CatchAllKey}
	name := host
	if isWildcard(host) {
		name = host[2:]
		keys = append(keys, under+host[1:]) // the hosts under it
	}
	for _, s := range suffixes(name) {
		keys = append(keys, "*"+s) // the wildcards covering it
	}
	return keys, false
}
