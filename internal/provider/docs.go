package provider

import "strings"

// The knobs a target provider is documented for, in the order the README's table lists them.
const (
	KnobShedAll        = "ShedAll"
	KnobRedirect       = "ShedAll with `shed.redirectURL`"
	KnobAllowlistAdmit = "region allowlist, `missingRegion: Admit`"
	KnobAllowlistShed  = "region allowlist, `missingRegion: Shed`"
	KnobAdmitPercent   = "`admitPercent`"
	KnobPerClientRate  = "`perClientRequestsPerSecond`"
	KnobUserEditKept   = "an edit of the target during the incident"
	KnobGatewayVerdict = "the data plane's verdict"
)

// Knobs are the documented knobs, in order.
var Knobs = []string{KnobShedAll, KnobRedirect, KnobAllowlistAdmit, KnobAllowlistShed, KnobAdmitPercent, KnobPerClientRate, KnobUserEditKept, KnobGatewayVerdict}

// Mechanism is how one data plane carries out each knob: the capability data the README's
// knob × provider table is generated from. A knob missing from How cannot be carried out.
type Mechanism struct {
	// Name is the data plane ("ingress-nginx", "Traefik v3.7", "Gateway API (core)").
	Name string
	// How says, per knob, what is written and its limits.
	How map[string]string
}

// Documented is a target provider that says how its data planes carry out each knob.
type Documented interface {
	Mechanisms() []Mechanism
}

// KnobTable renders the knob × data plane table (Markdown) of the mechanisms.
func KnobTable(mechanisms []Mechanism) string {
	var b strings.Builder
	b.WriteString("| knob |")
	for _, m := range mechanisms {
		b.WriteString(" " + m.Name + " |")
	}
	b.WriteString("\n|---|")
	for range mechanisms {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, k := range Knobs {
		b.WriteString("| " + k + " |")
		for _, m := range mechanisms {
			how, ok := m.How[k]
			if !ok {
				how = "**not available**"
			}
			b.WriteString(" " + how + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}
