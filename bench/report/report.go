// Package report prints benchmark results as tables, writes them into BENCHMARKS.md between
// markers, and draws the records-over-time plot.
package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
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

// Plot draws lines over shaded windows into a PNG. The legend has a column of its own right of the
// data, never over it, in an order that does not change between runs: the lines as given, then the
// windows' labels sorted. Each label has a colour of its own (hues spread evenly over as many labels
// as there are), translucent so that overlapping windows both show.
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
	labels := spanLabels(spans)
	shade := map[string]color.Color{}
	for i, l := range labels {
		shade[l] = hue(float64(i) / float64(len(labels)))
	}
	for _, sp := range spans {
		poly, err := plotter.NewPolygon(plotter.XYs{{X: sp.From, Y: 0}, {X: sp.To, Y: 0}, {X: sp.To, Y: maxY}, {X: sp.From, Y: maxY}})
		if err != nil {
			return err
		}
		poly.Color = shade[sp.Label]
		poly.LineStyle.Width = 0
		p.Add(poly)
	}
	p.Add(plotter.NewGrid())
	legend := plot.NewLegend()
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
		legend.Add(s.Name, l)
	}
	for _, label := range labels {
		poly, _ := plotter.NewPolygon(plotter.XYs{{X: 0, Y: 0}})
		poly.Color = shade[label]
		poly.LineStyle.Width = 0
		legend.Add(label, poly)
	}
	legend.Top, legend.Left = true, true

	const width, height, legendWidth = 11.5 * vg.Inch, 5 * vg.Inch, 2.3 * vg.Inch
	img := vgimg.New(width, height)
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
	legend.Draw(draw.Crop(dc, width-legendWidth+vg.Points(8), 0, 0, -vg.Points(24)))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func spanLabels(spans []Span) []string {
	var labels []string
	for _, sp := range spans {
		if !slices.Contains(labels, sp.Label) {
			labels = append(labels, sp.Label)
		}
	}
	slices.Sort(labels)
	return labels
}

// hue is a light, translucent colour at h (0..1) around the colour wheel.
func hue(h float64) color.Color {
	const s, v = 0.45, 1.0
	h6 := h * 6
	c := v * s
	x := c * (1 - math.Abs(math.Mod(h6, 2)-1))
	var r, g, b float64
	switch int(h6) % 6 {
	case 0:
		r, g = c, x
	case 1:
		r, g = x, c
	case 2:
		g, b = c, x
	case 3:
		g, b = x, c
	case 4:
		r, b = x, c
	default:
		r, b = c, x
	}
	m := v - c
	to := func(f float64) uint8 { return uint8(math.Round((f + m) * 255)) }
	return color.NRGBA{R: to(r), G: to(g), B: to(b), A: 150}
}

// Pct formats a ratio.
func Pct(num, den float64) string {
	if den == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", num/den)
}
