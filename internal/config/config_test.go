package config_test

import (
	"flag"
	"os"
	"path/filepath"
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
	require.NoError(t, fs.Parse([]string{"-s", "from-flag"}))
	require.Equal(t, 7*time.Second, d)
	require.Equal(t, "from-flag", s)
	require.Equal(t, "default", u)
	require.Contains(t, fs.Lookup("d").Usage, "(env WB_TEST_D)")
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
