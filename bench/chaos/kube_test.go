package chaos

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The kubelet's CRI log files become plain JSON lines: partial lines joined, a line still being
// written read once complete, a rotated file and a deleted pod's file read to their end.
func TestPodLogsFollowsCRIFiles(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	dir := filepath.Join(src, "writeback_writeback-worker-abc_uid1", "worker")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "0.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(f *os.File, s string) {
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	l := &podLogs{src: src, dst: dst, prefix: "writeback_"}
	write(f, "2026-12-05T10:00:00.1Z stderr F {\"a\":1}\n2026-12-05T10:00:00.2Z stderr P {\"b\":\n")
	l.poll()
	write(f, "2026-12-05T10:00:00.3Z stderr F 2}\n2026-12-05T10:00:00.4Z stderr F {\"c\"")
	l.poll()
	write(f, ":3}\n")
	l.poll()
	// rotation: the kubelet renames the file and starts a new one at the same path
	if err := os.Rename(path, path+".20261205-100001"); err != nil {
		t.Fatal(err)
	}
	write(f, "2026-12-05T10:00:01.0Z stderr F {\"d\":4}\n") // the last lines before the rename landed
	g, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	write(g, "2026-12-05T10:00:02.0Z stderr F {\"e\":5}\n")
	l.poll()
	// the pod deleted: its directory goes, what the open file still holds is read
	write(g, "2026-12-05T10:00:03.0Z stderr F {\"f\":6}\n")
	if err := os.RemoveAll(filepath.Join(src, "writeback_writeback-worker-abc_uid1")); err != nil {
		t.Fatal(err)
	}
	l.poll()

	files := l.files(regexp.MustCompile(`_writeback-worker-[^_]+_[^_]+_worker_`))
	if len(files) != 2 {
		t.Fatalf("want the file and its rotated successor, got %v", files)
	}
	var all []string
	for _, name := range files {
		b, _ := os.ReadFile(name)
		all = append(all, strings.TrimSpace(string(b)))
	}
	got := strings.Join(all, "\n")
	want := "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n{\"e\":5}\n{\"f\":6}"
	if got != want {
		t.Fatalf("copied lines:\n%s\nwant:\n%s", got, want)
	}
	if !l.contains("writeback-worker-abc", `{"f":6}`) || l.contains("writeback-worker-abc", `{"g"`) {
		t.Fatal("contains does not find the pod's lines")
	}
}
