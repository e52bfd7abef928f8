package drill

import (
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// WriteHTML writes the drills as one self-contained HTML page (no network, no scripts, no
// fonts): per drill an SVG timeline over drill time (the admitted share of traffic and the
// per-client rate, the autoscaler's minimum and scale-down hold, ramp step boundaries, gate
// verdicts, each change of the Armed verdict with the API server's message, each flip with who
// and why, each expectation as a pass or fail mark, a mark per runbook step with its changes on
// hover), and below it every step with the objects' diffs.
func WriteHTML(w io.Writer, results []*Result) error {
	page := htmlPage{Generated: "Floodgate drill report"}
	for _, r := range results {
		page.Drills = append(page.Drills, chartOf(r))
	}
	return reportTemplate.Execute(w, page)
}

type htmlPage struct {
	Generated string
	Drills    []drillChart
}

// Geometry of the timeline.
const (
	chartWidth  = 1160
	plotLeft    = 170
	plotRight   = 1140
	laneFlips   = 34
	laneTraffic = 70
	trafficH    = 120
	laneRate    = 216
	rateH       = 40
	laneScale   = 286
	scaleH      = 70
	laneGates   = 386
	laneArmed   = 418
	laneConfirm = 450
	laneExpect  = 482
	laneSteps   = 514
	axisY       = 554
	chartHeight = 584
)

type drillChart struct {
	Name, Description, Verdict string
	Wall, DrillTime            string
	Policy, Autoscaler         string
	Width, Height              int
	Lanes                      []lane
	Segments                   []segment
	RatePath, ScalePath        string
	RateLabels                 []mark
	Holds                      []box
	Boundaries                 []boundary
	Flips                      []mark
	Gates                      []mark
	Armed                      []mark
	Confirmed                  []mark
	Expects                    []mark
	Steps                      []mark
	Ticks                      []tick
	Rows                       []htmlRow
	// AxisY and TickY place the time axis, below the lanes (one more per cluster of a drill
	// across clusters).
	AxisY, TickY int
}

type lane struct {
	Y     int
	Label string
}

// segment is the admitted share between two moments: its box and what it says.
type segment struct {
	X, Y, W, H float64
	Class      string
	Label      string
	LabelX     float64
	// Shown is the label written on the chart ("" where the lane already says it).
	Shown string
}

type box struct{ X, Y, W, H float64 }

type boundary struct {
	X     float64
	Label string
}

type mark struct {
	X, Y  float64
	Class string
	Text  string
	Title string
}

type tick struct {
	X     float64
	Label string
}

type htmlRow struct {
	At, Kind, Title, Failure string
	Changes                  []string
	Output                   []string
	Passed                   bool
}

func chartOf(r *Result) drillChart {
	c := drillChart{Name: r.Name, Description: r.Description, Verdict: "PASS", Width: chartWidth, Height: chartHeight,
		Wall: r.Wall.Round(10 * time.Millisecond).String(), DrillTime: r.DrillTime.String()}
	if r.Failed {
		c.Verdict = "FAIL"
	}
	span := r.DrillTime
	if span <= 0 {
		span = time.Minute
	}
	x := func(t time.Time) float64 {
		f := float64(t.Sub(r.Start)) / float64(span)
		return plotLeft + min(max(f, 0), 1)*(plotRight-plotLeft)
	}
	end := r.Start.Add(span)
	c.Lanes = []lane{{laneFlips, "levers pulled"}, {laneTraffic + trafficH/2, "admitted traffic"}, {laneRate + rateH/2, "per-client rate"},
		{laneScale + scaleH/2, "autoscaler minimum"}, {laneGates, "gate verdicts"}, {laneArmed, "levers armed"}, {laneConfirm, "confirmed in data plane"}, {laneExpect, "expectations"}, {laneSteps, "runbook steps"}}

	// The state in force from each row to the next.
	var maxRate, maxMin float64 = 1, 1
	for _, row := range r.Rows {
		if s := row.State; s != nil {
			maxRate = max(maxRate, float64(s.Applied.PerClientRequestsPerSecond))
			maxMin = max(maxMin, float64(s.MinReplicas))
		}
	}
	var rate, scale strings.Builder
	var lastRate int32
	lastArmed, lastConfirmed := "", ""
	for i, row := range r.Rows {
		s := row.State
		if s == nil {
			continue
		}
		if c.Policy == "" {
			c.Policy, c.Autoscaler = s.Policy, s.Autoscaler
		}
		until := end
		if i+1 < len(r.Rows) && r.Rows[i+1].State != nil {
			until = r.Rows[i+1].StateAt
		}
		x0, x1 := x(row.StateAt), x(until)
		share, class, label := admitted(s)
		h := share / 100 * trafficH
		if x1 > x0 {
			c.Segments = append(c.Segments, segment{X: x0, Y: laneTraffic + trafficH - h, W: x1 - x0, H: h, Class: class, Label: label, LabelX: x0 + 4, Shown: label})
		}
		ry := laneRate + rateH - float64(s.Applied.PerClientRequestsPerSecond)/maxRate*rateH
		sy := laneScale + scaleH - float64(s.MinReplicas)/maxMin*scaleH
		if rate.Len() == 0 {
			fmt.Fprintf(&rate, "M%.1f %.1f", x0, ry)
			fmt.Fprintf(&scale, "M%.1f %.1f", x0, sy)
		}
		fmt.Fprintf(&rate, " L%.1f %.1f L%.1f %.1f", x0, ry, x1, ry)
		fmt.Fprintf(&scale, " L%.1f %.1f L%.1f %.1f", x0, sy, x1, sy)
		if rps := s.Applied.PerClientRequestsPerSecond; rps != lastRate {
			lastRate = rps
			if rps > 0 {
				c.RateLabels = append(c.RateLabels, mark{X: x0 + 4, Y: ry - 3, Text: fmt.Sprintf("%d/s per client", rps)})
			}
		}
		if s.ScaleDownDisabled && x1 > x0 {
			c.Holds = append(c.Holds, box{X: x0, Y: laneScale, W: x1 - x0, H: scaleH})
		}
		if s.Armed != "" && s.Armed+s.ArmedMessage != lastArmed {
			lastArmed = s.Armed + s.ArmedMessage
			c.Armed = append(c.Armed, mark{X: x(row.StateAt), Y: laneArmed, Class: "armed-" + strings.ToLower(s.Armed),
				Title: fmt.Sprintf("%s Armed %s: %s", row.StateAt.UTC().Format("15:04"), s.Armed, s.ArmedMessage)})
		}
		if s.Confirmed != "" && s.Confirmed+s.ConfirmedMessage != lastConfirmed {
			lastConfirmed = s.Confirmed + s.ConfirmedMessage
			c.Confirmed = append(c.Confirmed, mark{X: x(row.StateAt), Y: laneConfirm, Class: "confirmed-" + strings.ToLower(s.Confirmed),
				Title: fmt.Sprintf("%s Confirmed %s: %s", row.StateAt.UTC().Format("15:04"), s.Confirmed, s.ConfirmedMessage)})
		}
		for _, g := range s.Gates {
			c.Gates = append(c.Gates, mark{X: x(row.At), Y: laneGates, Class: "gate-" + strings.ToLower(string(g.Verdict)),
				Title: fmt.Sprintf("%s %s: %s (%s)", row.At.UTC().Format("15:04"), g.Name, g.Verdict, g.Reading)})
		}
	}
	c.RatePath, c.ScalePath = rate.String(), scale.String()
	c.clusterLanes(r, x, end)

	// Flips and ramp step boundaries, from the policy's history at the end.
	var history []v1alpha1.Transition
	for _, row := range slices.Backward(r.Rows) {
		if row.State != nil {
			history = row.State.History
			break
		}
	}
	for _, t := range history {
		at := t.Time.Time
		if at.Before(r.Start) || (at.Equal(r.Start) && t.Action == v1alpha1.ActionNormal && t.Reason == "ActionChanged") {
			continue // the policy's creation, not a lever pulled
		}
		switch t.Reason {
		case "ActionChanged":
			who := t.By
			if who == "" {
				who = "unknown"
			}
			c.Flips = append(c.Flips, mark{X: x(at), Y: laneFlips, Class: "flip", Text: string(t.Action),
				Title: fmt.Sprintf("%s %s by %s: %s", at.UTC().Format("15:04"), t.Message, who, t.Note)})
			c.Boundaries = append(c.Boundaries, boundary{X: x(at), Label: string(t.Action)})
		case "StepAdvanced", "StepBack", "FullTraffic", "RampComplete":
			label := t.Reason
			if t.Step > 0 && t.Reason != "FullTraffic" && t.Reason != "RampComplete" {
				label = fmt.Sprintf("step %d", t.Step)
			}
			c.Boundaries = append(c.Boundaries, boundary{X: x(at), Label: label})
		}
	}

	// A mark per runbook step (stacked where steps share a moment), and each expectation.
	stacked := map[int]int{}
	for _, row := range r.Rows {
		px := x(row.At)
		k := stacked[int(px)]
		stacked[int(px)]++
		title := fmt.Sprintf("%s %s: %s", row.At.UTC().Format("15:04:05"), row.Kind, row.Title)
		if len(row.Changes) > 0 {
			title += "\n" + strings.Join(row.Changes, "\n")
		}
		c.Steps = append(c.Steps, mark{X: px + float64(k%6)*3, Y: laneSteps + float64(k%3)*5 - 5, Class: "step-mark step-" + row.Kind, Title: title})
		if row.Kind == "expect" {
			cl, text := "expect-pass", "✓"
			if row.Failure != "" {
				cl, text, title = "expect-fail", "✗", title+"\n✗ "+row.Failure
			}
			c.Expects = append(c.Expects, mark{X: px, Y: laneExpect, Class: "expect-mark " + cl, Text: text, Title: title})
		}
		c.Rows = append(c.Rows, htmlRow{At: row.At.UTC().Format("15:04:05"), Kind: row.Kind, Title: row.Title, Failure: row.Failure,
			Changes: row.Changes, Output: row.Output, Passed: row.Kind == "expect" && row.Failure == ""})
	}

	// The time axis: a tick every few minutes, about ten in all.
	every := time.Minute
	for span/every > 10 {
		every *= 5
		if span/every > 10 {
			every *= 2
		}
	}
	for t := r.Start; !t.After(end); t = t.Add(every) {
		c.Ticks = append(c.Ticks, tick{X: x(t), Label: t.UTC().Format("15:04")})
	}
	return c
}

// admitted is the share of traffic a state admits, for the chart (100 all, 0 none), the class of
// its band and what it says: regions admit their share of the traffic, which the chart cannot
// know, so an allowlist is a hatched band at mid height that names the regions.
func admitted(s *State) (share float64, class, label string) {
	a := s.Applied
	switch {
	case a.Shed:
		return 0, "shed", "shed"
	case len(a.AllowRegions) > 0 && a.AdmitPercent > 0:
		return float64(a.AdmitPercent) * 0.4, "regions", fmt.Sprintf("%d%% of %s", a.AdmitPercent, strings.Join(a.AllowRegions, ", "))
	case len(a.AllowRegions) > 0:
		return 40, "regions", strings.Join(a.AllowRegions, ", ")
	case a.AdmitPercent > 0:
		return float64(a.AdmitPercent), "percent", fmt.Sprintf("%d%%", a.AdmitPercent)
	}
	label = "100%"
	if a.PerClientRequestsPerSecond > 0 {
		label = fmt.Sprintf("100%% at %d/s per client", a.PerClientRequestsPerSecond)
	}
	return 100, "full", label
}

var reportTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Generated}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d2330; background: #fff; }
h1 { font-size: 20px; } h2 { font-size: 18px; margin-top: 32px; }
.verdict-PASS { color: #18794e; } .verdict-FAIL { color: #c62828; }
.meta { color: #5b6270; font-size: 13px; }
svg { border: 1px solid #e3e6ec; background: #fcfcfd; }
svg text { font-family: inherit; font-size: 11px; fill: #1d2330; }
.lane-label { font-size: 12px; font-weight: 600; fill: #5b6270; }
.band.full { fill: #9bd3ae; } .band.percent { fill: #f4c77b; } .band.regions { fill: url(#hatch); stroke: #4f7fc9; } .band.shed { fill: #e57373; }
.rate { fill: none; stroke: #7a4fc9; stroke-width: 2; } .scale { fill: none; stroke: #2f6fb3; stroke-width: 2; }
.hold { fill: #e57373; opacity: 0.18; }
.boundary { stroke: #8a93a3; stroke-dasharray: 4 3; } .boundary-label { fill: #5b6270; font-size: 10px; }
.flip { fill: #c62828; } .gate-pass { fill: #18794e; } .gate-fail { fill: #c62828; } .gate-unknown { fill: #9aa1ad; }
.armed-true { fill: #18794e; } .armed-false { fill: #c62828; } .armed-unknown { fill: #9aa1ad; }
.confirmed-true { fill: #18794e; } .confirmed-false { fill: #c62828; } .confirmed-unknown { fill: #9aa1ad; }
.expect-pass { fill: #18794e; font-size: 14px; } .expect-fail { fill: #c62828; font-size: 14px; font-weight: 700; }
.step-mark { fill: #4f5b73; } .step-expect { fill: #18794e; } .step-run { fill: #c62828; } .step-advance { fill: #9aa1ad; }
.axis { stroke: #c5cad3; } .tick { fill: #5b6270; font-size: 10px; }
table { border-collapse: collapse; margin-top: 12px; font-size: 13px; width: 100%; }
td, th { border-bottom: 1px solid #e3e6ec; padding: 4px 8px; text-align: left; vertical-align: top; }
td.kind { color: #5b6270; } .fail { color: #c62828; font-weight: 600; } .pass { color: #18794e; }
pre { margin: 4px 0; white-space: pre-wrap; font-size: 12px; }
</style>
</head>
<body>
<h1>{{.Generated}}</h1>
{{range .Drills}}{{$d := .}}
<section class="drill">
<h2>{{.Name}} — <span class="verdict-{{.Verdict}}">{{.Verdict}}</span></h2>
<p>{{.Description}}</p>
<p class="meta">policy {{.Policy}}{{if .Autoscaler}} · {{.Autoscaler}}{{end}} · {{.DrillTime}} of drill time in {{.Wall}} · hover a mark for details</p>
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="timeline of {{.Name}}">
<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#c9dcf5"/><line x1="0" y1="0" x2="0" y2="6" stroke="#4f7fc9" stroke-width="2"/></pattern></defs>
{{range .Lanes}}<text class="lane-label" x="8" y="{{.Y}}">{{.Label}}</text>
{{end}}
{{range .Holds}}<rect class="hold" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"><title>scale-down held</title></rect>
{{end}}
{{range .Segments}}<rect class="band {{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"><title>{{.Label}}</title></rect>
{{end}}
{{range .Segments}}{{if .Shown}}<text x="{{.LabelX}}" y="{{printf "%.1f" .Y}}" dy="-3">{{.Shown}}</text>
{{end}}{{end}}
<path class="rate" d="{{.RatePath}}"><title>per-client rate limit</title></path>
<path class="scale" d="{{.ScalePath}}"><title>autoscaler minimum replicas</title></path>
{{range .RateLabels}}<text x="{{.X}}" y="{{.Y}}">{{.Text}}</text>
{{end}}
{{range .Boundaries}}<line class="boundary" x1="{{.X}}" y1="50" x2="{{.X}}" y2="{{$d.Height}}"/><text class="boundary-label" x="{{.X}}" y="62" dx="3">{{.Label}}</text>
{{end}}
{{range .Flips}}<g class="flip-mark"><path class="flip" d="M{{.X}} {{.Y}} l-6 -10 h12 z"/><text x="{{.X}}" y="{{.Y}}" dx="8" dy="-2">{{.Text}}</text><title>{{.Title}}</title></g>
{{end}}
{{range .Gates}}<circle class="{{.Class}}" cx="{{.X}}" cy="{{.Y}}" r="5"><title>{{.Title}}</title></circle>
{{end}}
{{range .Armed}}<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="10" height="10" transform="translate(-5 -5)"><title>{{.Title}}</title></rect>
{{end}}
{{range .Confirmed}}<circle class="{{.Class}}" cx="{{.X}}" cy="{{.Y}}" r="5"><title>{{.Title}}</title></circle>
{{end}}
{{range .Expects}}<text class="{{.Class}}" x="{{.X}}" y="{{.Y}}" dy="5" text-anchor="middle">{{.Text}}<title>{{.Title}}</title></text>
{{end}}
{{range .Steps}}<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="3" height="10"><title>{{.Title}}</title></rect>
{{end}}
<line class="axis" x1="170" y1="{{.AxisY}}" x2="1140" y2="{{.AxisY}}"/>
{{range .Ticks}}<text class="tick" x="{{.X}}" y="{{$d.TickY}}" text-anchor="middle">{{.Label}}</text>
{{end}}
</svg>
<table>
<tr><th>drill time</th><th>step</th><th>what happened</th></tr>
{{range .Rows}}<tr><td>{{.At}}</td><td class="kind">{{.Kind}}</td><td>{{.Title}}
{{if .Output}}<pre>{{range .Output}}{{.}}
{{end}}</pre>{{end}}
{{if .Changes}}<details><summary>{{len .Changes}} change(s)</summary><pre>{{range .Changes}}{{.}}
{{end}}</pre></details>{{end}}
{{if .Failure}}<div class="fail">✗ {{.Failure}}</div>{{else if .Passed}}<div class="pass">✓</div>{{end}}</td></tr>
{{end}}
</table>
</section>
{{end}}
</body>
</html>
`))

// Geometry of a drill's lanes per cluster, below the runbook steps.
const (
	clusterLaneH   = 20
	clusterLaneGap = 30
)

// clusterLanes adds, for a drill across clusters, one lane per cluster: the share of traffic it
// admitted over drill time, and what it says; the time axis moves below them.
func (c *drillChart) clusterLanes(r *Result, x func(time.Time) float64, end time.Time) {
	c.AxisY, c.TickY = axisY, axisY+16
	for i, name := range r.Clusters {
		top := float64(axisY + i*clusterLaneGap - 6)
		c.Lanes = append(c.Lanes, lane{Y: int(top) + clusterLaneH/2 + 4, Label: "admitted in " + name})
		last := ""
		for j, row := range r.Rows {
			s := row.Clusters[name]
			if s == nil {
				continue
			}
			until := end
			for _, next := range r.Rows[j+1:] {
				if next.Clusters[name] != nil {
					until = next.StateAt
					break
				}
			}
			x0, x1 := x(row.StateAt), x(until)
			share, class, label := admitted(s)
			h := share / 100 * clusterLaneH
			if x1 > x0 {
				shown := label
				if label == last {
					shown = ""
				}
				last = label
				c.Segments = append(c.Segments, segment{X: x0, Y: top + clusterLaneH - h, W: x1 - x0, H: h, Class: class, Label: label, LabelX: x0 + 4, Shown: shown})
			}
		}
	}
	if n := len(r.Clusters); n > 0 {
		c.Policy += " (the lanes above chart " + r.Clusters[0] + "; one lane per cluster below)"
		c.AxisY, c.TickY = axisY+n*clusterLaneGap, axisY+n*clusterLaneGap+16
		c.Height = chartHeight + n*clusterLaneGap
	}
}
