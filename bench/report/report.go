// Package report prints benchmark results as tables, writes them into BENCHMARKS.md between
// markers, and draws the records-over-time plot.
package report

import (
	"fmt"
	"image/color"
	"os"
	"regexp"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Table is a markdown table.
type Table struct {
	Header []string
	Rows   [][]string
}

// Markdown renders the table.
func (t Table) Markdown() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.Header, " | ") + " |\n|")
	for range t.Header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// Text renders the table for a terminal.
func (t Table) Text() string {
	widths := make([]int, len(t.Header))
	for i, h := range t.Header {
		widths[i] = len([]rune(h))
	}
	for _, r := range t.Rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		for i, c := range cells {
			b.WriteString(c + strings.Repeat(" ", widths[i]-len([]rune(c))+2))
		}
		b.WriteString("\n")
	}
	line(t.Header)
	for _, r := range t.Rows {
		line(r)
	}
	return b.String()
}

// WriteSection replaces the section between <!-- name:start --> and <!-- name:end --> in path
// (appending it if absent).
func WriteSection(path, name, body string) error {
	old, _ := os.ReadFile(path)
	startM, endM := "<!-- "+name+":start -->", "<!-- "+name+":end -->"
	section := startM + "\n" + strings.TrimSpace(body) + "\n" + endM
	re := regexp.MustCompile(`(?s)` + regexp.QuoteMeta(startM) + `.*?` + regexp.QuoteMeta(endM))
	var out string
	switch {
	case len(old) == 0:
		out = "# Benchmarks\n\nNumbers measured on this project's machine (2 cores, 24 GiB) by `make chaos` and `make bench`.\n\n" + section + "\n"
	case re.Match(old):
		out = re.ReplaceAllLiteralString(string(old), section)
	default:
		out = strings.TrimRight(string(old), "\n") + "\n\n" + section + "\n"
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// Series is one line of a plot.
type Series struct {
	Name  string
	X, Y  []float64
	Color color.Color
}

// Span is a shaded window of the plot.
type Span struct {
	Label    string
	From, To float64
}

// Plot draws lines over shaded windows into a PNG.
func Plot(path, title, xLabel, yLabel string, series []Series, spans []Span) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	maxY := 1.0
	for _, s := range series {
		for _, y := range s.Y {
			maxY = max(maxY, y)
		}
	}
	shade := []color.Color{color.RGBA{255, 200, 200, 255}, color.RGBA{200, 220, 255, 255}, color.RGBA{220, 255, 200, 255}, color.RGBA{255, 235, 180, 255}}
	labels := map[string]color.Color{}
	for _, sp := range spans {
		c, ok := labels[sp.Label]
		if !ok {
			c = shade[len(labels)%len(shade)]
			labels[sp.Label] = c
		}
		poly, err := plotter.NewPolygon(plotter.XYs{{X: sp.From, Y: 0}, {X: sp.To, Y: 0}, {X: sp.To, Y: maxY}, {X: sp.From, Y: maxY}})
		if err != nil {
			return err
		}
		poly.Color = c
		poly.LineStyle.Width = 0
		p.Add(poly)
	}
	for label, c := range labels {
		poly, _ := plotter.NewPolygon(plotter.XYs{{X: 0, Y: 0}})
		poly.Color = c
		p.Legend.Add(label, poly)
	}
	for _, s := range series {
		pts := make(plotter.XYs, len(s.X))
		for i := range s.X {
			pts[i] = plotter.XY{X: s.X[i], Y: s.Y[i]}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = s.Color
		l.Width = vg.Points(2)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.YOffs = -vg.Points(4)
	p.Add(plotter.NewGrid())
	return p.Save(10*vg.Inch, 5*vg.Inch, path)
}

// Pct formats a ratio.
func Pct(num, den float64) string {
	if den == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", num/den)
}
