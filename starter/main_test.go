package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLedgerDays(t *testing.T) {
	for _, c := range []struct {
		day, to string
		want    []string
		err     string
	}{
		{"2026-12-05", "", []string{"2026-12-05"}, ""},
		{"2026-12-30", "2027-01-02", []string{"2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02"}, ""},
		{"2026-12-05", "2026-12-05", []string{"2026-12-05"}, ""},
		{"2026-12-05", "2026-12-04", nil, "must be from 2026-12-05"},
		{"2026-12-05", "2028-01-01", nil, "a year after"},
		{"2026-12-05", "12/06/2026", nil, `--to: day "12/06/2026" is not YYYY-MM-DD`},
	} {
		got, err := ledgerDays(c.day, c.to)
		if c.err != "" {
			require.ErrorContains(t, err, c.err, c.to)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, c.want, got)
	}
}

func TestProgName(t *testing.T) {
	require.Equal(t, "go run ./starter", progName("/tmp/go-build123/b001/exe/starter"))
	require.Equal(t, "bin/starter", progName("bin/starter"))
	require.Equal(t, "/starter", progName("/starter"))
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{-time.Second: "0s", 42 * time.Second: "42s", 90 * time.Minute: "1h",
		47 * time.Hour: "47h", 50 * time.Hour: "2d", 29 * 24 * time.Hour: "29d", 3 * time.Minute: "3m"} {
		require.Equal(t, want, age(d), d)
	}
}
