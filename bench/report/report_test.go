package report

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every window label has a colour of its own, and the legend's order does not depend on the order
// the windows came in.
func TestPlotColoursAndLegendOrder(t *testing.T) {
	spans := []Span{{"worker killed", 5, 6}, {"TCS outage", 10, 40}, {"RabbitMQ down", 50, 70}, {"Temporal down", 80, 90},
		{"TCS hold", 95, 120}, {"retry job", 100, 130}, {"starter killed", 20, 21}, {"TCS 503s", 140, 160}, {"worker killed", 30, 31}}
	labels := spanLabels(spans)
	require.Equal(t, []string{"RabbitMQ down", "TCS 503s", "TCS hold", "TCS outage", "Temporal down", "retry job", "starter killed", "worker killed"}, labels)
	reversed := append([]Span(nil), spans...)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	require.Equal(t, labels, spanLabels(reversed))
	seen := map[any]bool{}
	for i := range labels {
		c := hue(float64(i) / float64(len(labels)))
		require.False(t, seen[c], "label %d shares a colour", i)
		seen[c] = true
	}

	path := filepath.Join(t.TempDir(), "plot.png")
	if dir := os.Getenv("WRITEBACK_PLOT_DIR"); dir != "" {
		path = filepath.Join(dir, "plot.png")
	}
	xs, a, b := []float64{}, []float64{}, []float64{}
	for x := 0.0; x <= 170; x += 5 {
		xs, a, b = append(xs, x), append(a, x*10), append(b, x*6)
	}
	require.NoError(t, Plot(path, "title", "seconds", "placements", []Series{{Name: "writeback", X: xs, Y: a}, {Name: "pre-fix consumer", X: xs, Y: b}}, spans))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	require.Greater(t, img.Bounds().Dx(), img.Bounds().Dy())
}
