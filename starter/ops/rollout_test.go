package ops

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseSteps(t *testing.T) {
	got, err := ParseSteps("10, 25%,50")
	require.NoError(t, err)
	require.Equal(t, []float32{10, 25, 50}, got)
	_, err = ParseSteps("")
	require.Error(t, err)
}
