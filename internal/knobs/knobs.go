// Package knobs holds the Knobs value: what a policy puts in force at one moment, independent of
// the mechanism (provider) that carries it out.
package knobs

import (
	"slices"
	"sort"
)

// Knobs is what is in force. The zero value is "nothing of ours": every target as it was.
type Knobs struct {
	// Shed answers every request with the shed response.
	Shed bool
	// RestrictRegions admits only requests whose region is in AllowRegions.
	RestrictRegions bool
	// AllowRegions are the admitted regions (sorted, unique) when RestrictRegions.
	AllowRegions []string
	// PerClientRequestsPerSecond limits each client address; 0 is no limit.
	PerClientRequestsPerSecond int32
	// AdmitPercent admits this share of requests; 0 and 100 both mean all.
	AdmitPercent int32
	// HoldAutoscalers keeps the autoscalers from scaling down.
	HoldAutoscalers bool
	// ReleaseStage, with HoldAutoscalers, is how far the gradual release has gone: 0 holds fully;
	// 1..ReleaseStages re-enable a bounded scale-down and lower minReplicas stepwise.
	ReleaseStage int32
}

// ReleaseStages is how many steps an autoscaler hold is released in.
const ReleaseStages = 4

// New builds knobs from a region list (nil: unrestricted), a rate and a share, normalised: an
// allowlist that admits nobody is the same as shedding everything, and 100% is all.
func New(restrict bool, regions []string, rps, admitPercent int32) Knobs {
	k := Knobs{RestrictRegions: restrict, PerClientRequestsPerSecond: rps, AdmitPercent: admitPercent}
	if restrict {
		k.AllowRegions = unique(regions)
		if len(k.AllowRegions) == 0 {
			return Knobs{Shed: true}
		}
	}
	if k.AdmitPercent >= 100 {
		k.AdmitPercent = 0
	}
	return k
}

// ShedAll is every request shed.
func ShedAll() Knobs { return Knobs{Shed: true} }

// Traffic returns the knobs without the autoscaler hold: what the traffic providers apply.
func (k Knobs) Traffic() Knobs {
	k.HoldAutoscalers, k.ReleaseStage = false, 0
	return k
}

// Sheds reports whether some requests get the shed response (so a shed backend is needed).
func (k Knobs) Sheds() bool {
	return k.Shed || k.RestrictRegions || k.AdmitPercent > 0
}

// IsFullTraffic reports whether every request is admitted (no shed, no allowlist, no share, no
// rate limit): the moment from which an autoscaler hold counts down to its release.
func (k Knobs) IsFullTraffic() bool {
	return !k.Shed && !k.RestrictRegions && k.AdmitPercent == 0 && k.PerClientRequestsPerSecond == 0
}

// Equal compares two knob values.
func (k Knobs) Equal(o Knobs) bool {
	return k.Shed == o.Shed && k.RestrictRegions == o.RestrictRegions &&
		slices.Equal(k.AllowRegions, o.AllowRegions) &&
		k.PerClientRequestsPerSecond == o.PerClientRequestsPerSecond &&
		k.AdmitPercent == o.AdmitPercent && k.HoldAutoscalers == o.HoldAutoscalers && k.ReleaseStage == o.ReleaseStage
}

// Intersect combines two allowlists, where an empty list means "no restriction": the result
// restricts when either does.
func Intersect(a, b []string) (restrict bool, regions []string) {
	switch {
	case len(a) == 0 && len(b) == 0:
		return false, nil
	case len(a) == 0:
		return true, unique(b)
	case len(b) == 0:
		return true, unique(a)
	}
	in := map[string]bool{}
	for _, r := range a {
		in[r] = true
	}
	for _, r := range b {
		if in[r] {
			regions = append(regions, r)
		}
	}
	return true, unique(regions)
}

func unique(regions []string) []string {
	out := slices.Clone(regions)
	sort.Strings(out)
	return slices.Compact(out)
}
