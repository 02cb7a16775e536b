package integration_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/testenv"
	"github.com/tis-writeback/writeback/starter/intake"
	"github.com/tis-writeback/writeback/starter/ops"
)

func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is missing in CI: .ci/run installs Debian's chromium")
	}
	t.Skip("Chromium is not installed (apt-get install chromium): skipping the check of what the Temporal UI shows")
	return ""
}

// TestTemporalUIShowsTheDeadLetter loads the real Temporal UI in headless Chromium, filters on
// WritebackState="DeadLettered", and checks that the operator sees the dead letter (and not the
// completed record), then opens it and sees its summary.
func TestTemporalUIShowsTheDeadLetter(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	browser := chromium(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	uiPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	tm := testenv.StartTemporalWithUI(t, uiPort)
	s := testenv.StartSim(t, 1000)
	testenv.StartWorker(t, tm, s.URL(), testenv.WorkerOptions{})

	ok := placement(101, "DE_SEV_APP_20210728_00000101.DAT")
	dead := placement(777777, "DE_SEV_APP_20210728_00003779.DAT") // unknown to TCS
	starter := intake.TemporalStarter{Client: tm.Client}
	for _, m := range []contract.PlacementExported{ok, dead} {
		rec, err := intake.Decode(contract.KindPlacement, mustJSON(t, m))
		require.NoError(t, err)
		_, err = starter.Start(context.Background(), rec)
		require.NoError(t, err)
	}
	st := &stack{tm: tm, sim: s}
	st.waitState(t, ok.WorkflowID(), contract.StateCompleted, 30*time.Second)
	st.waitState(t, dead.WorkflowID(), contract.StateDeadLettered, 30*time.Second)
	require.Eventually(t, func() bool { return count(t, tm.Client, `WritebackState="DeadLettered"`) == 1 }, 10*time.Second, 100*time.Millisecond)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1400, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	// cdproto predates some events of Chromium 156 (e.g. IPAddressSpace values) and chromedp
	// reports each one it cannot decode: hundreds of lines that say nothing about this test.
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") {
			t.Log(msg)
		}
	}))
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	base := "http://127.0.0.1:" + uiPort
	// The link `starter deadletters` prints for the dead letter's failure group.
	require.Eventually(t, func() bool { return count(t, tm.Client, `WritebackFailure="tcs-404"`) == 1 }, 10*time.Second, 100*time.Millisecond)
	groups, err := ops.DeadLetterGroups(context.Background(), tm.Client)
	require.NoError(t, err)
	require.Len(t, groups, 1)
	require.Equal(t, "tcs-404", groups[0].Name)
	listURL := groups[0].UILink(base, "default")
	var listText string
	var shot []byte
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(listURL),
		chromedp.WaitVisible(`//a[contains(., "`+dead.WorkflowID()+`")]`, chromedp.BySearch),
		chromedp.Text("body", &listText, chromedp.ByQuery),
		chromedp.FullScreenshot(&shot, 100),
	))
	require.Contains(t, listText, dead.WorkflowID())
	require.NotContains(t, listText, ok.WorkflowID(), "the filter shows only the dead letter")
	saveArtifact(t, "ui-dead-letters.png", shot)

	// The workflow's own summary (set by the starter) is under "User Metadata".
	var detail string
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Click(`//a[contains(., "`+dead.WorkflowID()+`")]`, chromedp.BySearch),
		chromedp.WaitVisible(`//*[self::a or self::button][contains(., "User Metadata")]`, chromedp.BySearch),
		chromedp.Click(`//*[self::a or self::button][contains(., "User Metadata")]`, chromedp.BySearch),
		chromedp.WaitVisible(`//*[contains(text(), "`+dead.Summary()+`")]`, chromedp.BySearch),
		chromedp.Text("body", &detail, chromedp.ByQuery),
		chromedp.FullScreenshot(&shot, 100),
	))
	require.Contains(t, detail, dead.Summary())
	saveArtifact(t, "ui-dead-letter-detail.png", shot)
}

func saveArtifact(t *testing.T, name string, b []byte) {
	dir := filepath.Join(testenv.RepoRoot(t), ".artifacts")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	t.Logf("screenshot: %s", filepath.Join(dir, name))
}
