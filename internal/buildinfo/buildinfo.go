// Package buildinfo says which build of writeback runs: every binary's --version and the
// writeback_build_info metric.
package buildinfo

import (
	"fmt"
	"os"
	"runtime/debug"
)

// Version and Revision may be set at link time (-ldflags "-X …/buildinfo.Version=1.0.0"), as the
// images are built; otherwise they come from the Go build information (module version, VCS revision).
var Version, Revision string

// Get returns the build's version and revision ("devel" and "unknown" when nothing says).
func Get() (version, revision string) {
	version, revision = Version, Revision
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		fromVCS, modified := false, false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if revision == "" {
					revision, fromVCS = s.Value, true
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if fromVCS && modified {
			revision += "-dirty"
		}
	}
	if version == "" {
		version = "devel"
	}
	if revision == "" {
		revision = "unknown"
	}
	return version, revision
}

// String is the line --version prints.
func String(program string) string {
	v, r := Get()
	return fmt.Sprintf("%s %s (revision %s)", program, v, r)
}

// HandleVersionFlag prints the version and exits when the first argument asks for it (--version,
// -version or version), before any other flag or command is looked at.
func HandleVersionFlag(program string) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "--version", "-version", "version":
			fmt.Println(String(program))
			os.Exit(0)
		}
	}
}
