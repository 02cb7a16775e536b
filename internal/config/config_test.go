package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/config"
)

func TestFlagBeatsEnvBeatsDefault(t *testing.T) {
	t.Setenv("WB_TEST_D", "7s")
	t.Setenv("WB_TEST_S", "from-env")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	set := config.Set{FS: fs}
	var d time.Duration
	var s, u string
	set.Duration(&d, "d", "WB_TEST_D", time.Second, "a duration")
	set.String(&s, "s", "WB_TEST_S", "default", "a string")
	set.String(&u, "u", "WB_TEST_UNSET", "default", "another")
	require.NoError(t, config.Parse(fs, []string{"-s", "from-flag"}))
	require.Equal(t, 7*time.Second, d)
	require.Equal(t, "from-flag", s)
	require.Equal(t, "default", u)
	require.Contains(t, fs.Lookup("d").Usage, "(env WB_TEST_D)")
}

// A malformed value stops the program with the setting's name; it never quietly becomes the default.
func TestMalformedSettingsNameTheSetting(t *testing.T) {
	t.Setenv("WB_BUDGET", "1 day")
	t.Setenv("WB_PREFETCH", "abc")
	t.Setenv("WB_RATE", "fast")
	t.Setenv("WB_ADDR", "")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	set := config.Set{FS: fs}
	var d time.Duration
	var n int
	var f float64
	var a, tok string
	set.Duration(&d, "retry-budget", "WB_BUDGET", time.Hour, "budget")
	set.Int(&n, "prefetch", "WB_PREFETCH", 100, "prefetch")
	set.Float(&f, "rate", "WB_RATE", 10, "rate")
	set.String(&a, "addr", "WB_ADDR", "127.0.0.1:1", "address")
	set.Secret(&tok, "token", "WB_TOKEN", "token")
	err := config.Parse(fs, nil)
	require.Error(t, err)
	for _, want := range []string{`WB_BUDGET="1 day"`, "-retry-budget", "duration", `WB_PREFETCH="abc"`, "whole number",
		`WB_RATE="fast"`, "WB_ADDR (flag -addr) is set but empty"} {
		require.Contains(t, err.Error(), want)
	}
	// The flag wins, so a malformed environment value under a given flag is not an error.
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	config.Set{FS: fs2}.Int(&n, "prefetch", "WB_PREFETCH", 100, "prefetch")
	require.NoError(t, config.Parse(fs2, []string{"-prefetch", "7"}))
	require.Equal(t, 7, n)
}

// Usage shows defaults, never an environment value: TCS_TOKEN in the environment must not be printed.
func TestUsageNeverShowsEnvironmentValues(t *testing.T) {
	t.Setenv("WB_TOKEN", "s3cret-token-value")
	t.Setenv("WB_URL", "amqp://u:pw-from-env@host/")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	set := config.Set{FS: fs}
	var tok, u string
	set.Secret(&tok, "token", "WB_TOKEN", "token")
	set.String(&u, "url", "WB_URL", "amqp://guest:guest@localhost:5672/", "url")
	fs.PrintDefaults()
	require.NoError(t, config.Parse(fs, nil))
	fs.PrintDefaults()
	require.Equal(t, "s3cret-token-value", tok)
	require.NotContains(t, out.String(), "s3cret")
	require.NotContains(t, out.String(), "pw-from-env")
}

func TestTokenFileIsReadEachTime(t *testing.T) {
	f := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(f, []byte("one\n"), 0o600))
	tok, err := config.Token("ignored", f)
	require.NoError(t, err)
	v, _ := tok()
	require.Equal(t, "one", v)
	require.NoError(t, os.WriteFile(f, []byte("two"), 0o600)) // the Secret was rotated
	v, _ = tok()
	require.Equal(t, "two", v)

	_, err = config.Token("", "")
	require.ErrorContains(t, err, "TCS_TOKEN")
	_, err = config.Token("", filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
}
