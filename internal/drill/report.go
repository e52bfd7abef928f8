package drill

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes the timelines as Markdown.
func WriteMarkdown(w io.Writer, results []*Result) error {
	for _, r := range results {
		verdict := "PASS"
		if r.Failed {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "## %s — %s\n\n%s wall, %s drill time\n\n", r.Name, verdict, r.Wall.Round(1e7), r.DrillTime)
		fmt.Fprintln(w, "| wall | drill time | step | what happened |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, row := range r.Rows {
			var what []string
			what = append(what, row.Output...)
			what = append(what, row.Changes...)
			if row.Failure != "" {
				what = append(what, "✗ "+row.Failure)
			} else if row.Kind == "expect" {
				what = append(what, "✓")
			}
			fmt.Fprintf(w, "| +%.2fs | %s | %s: %s | %s |\n", row.Wall.Seconds(), row.At.UTC().Format("15:04:05"),
				row.Kind, mdEscape(row.Title), mdEscape(strings.Join(what, "<br>")))
		}
		fmt.Fprintln(w)
	}
	return nil
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *struct{}     `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes one test suite per drill and one test case per step, for CI.
func WriteJUnit(w io.Writer, results []*Result) error {
	var doc junitSuites
	for _, r := range results {
		s := junitSuite{Name: r.Name, Time: fmt.Sprintf("%.3f", r.Wall.Seconds())}
		for i, row := range r.Rows {
			c := junitCase{Name: fmt.Sprintf("%02d %s: %s", i, row.Kind, row.Title), Classname: r.Name,
				SystemOut: strings.Join(append(append([]string{}, row.Output...), row.Changes...), "\n")}
			switch {
			case row.Failure != "":
				c.Failure = &junitFailure{Message: row.Failure, Text: row.Failure}
				s.Failures++
			case row.Kind == "skip":
				c.Skipped = &struct{}{}
				s.Skipped++
			}
			s.Cases = append(s.Cases, c)
		}
		s.Tests = len(s.Cases)
		doc.Suites = append(doc.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
