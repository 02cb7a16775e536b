// Package config gives flags their environment fallbacks: a flag on the command line wins, then
// the environment variable, then the default. Usage texts name the variable and show the real
// default, never an environment value (it may be a secret). A malformed value, or an empty one for
// a setting that has a default, stops the program with an error that names the setting: a typo
// must not quietly become the default.
package config

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Set defines flags on a FlagSet with env fallbacks; Parse applies them.
type Set struct{ FS *flag.FlagSet }

type kind int

const (
	kindString kind = iota
	kindSecret
	kindInt
	kindFloat
	kindDuration
	kindBool
)

type binding struct {
	name, env string
	kind      kind
	hasDef    bool
}

var (
	mu       sync.Mutex
	bindings = map[*flag.FlagSet][]binding{}
)

func (s Set) bind(name, env string, k kind, hasDef bool) {
	mu.Lock()
	defer mu.Unlock()
	bindings[s.FS] = append(bindings[s.FS], binding{name: name, env: env, kind: k, hasDef: hasDef})
}

func usage(u, env string) string { return fmt.Sprintf("%s (env %s)", u, env) }

// String defines a string flag.
func (s Set) String(p *string, name, env, def, u string) {
	s.FS.StringVar(p, name, def, usage(u, env))
	s.bind(name, env, kindString, def != "")
}

// Secret defines a string flag whose value is never printed (it has no default to show).
func (s Set) Secret(p *string, name, env, u string) {
	s.FS.StringVar(p, name, "", usage(u, env))
	s.bind(name, env, kindSecret, false)
}

// Int defines an int flag.
func (s Set) Int(p *int, name, env string, def int, u string) {
	s.FS.IntVar(p, name, def, usage(u, env))
	s.bind(name, env, kindInt, true)
}

// Float defines a float flag.
func (s Set) Float(p *float64, name, env string, def float64, u string) {
	s.FS.Float64Var(p, name, def, usage(u, env))
	s.bind(name, env, kindFloat, true)
}

// Duration defines a duration flag.
func (s Set) Duration(p *time.Duration, name, env string, def time.Duration, u string) {
	s.FS.DurationVar(p, name, def, usage(u, env))
	s.bind(name, env, kindDuration, true)
}

// Bool defines a boolean flag (true/false, 1/0).
func (s Set) Bool(p *bool, name, env string, def bool, u string) {
	s.FS.BoolVar(p, name, def, usage(u, env))
	s.bind(name, env, kindBool, true)
}

// Parse parses the command line, then fills each flag not given there from its environment
// variable. The error names every malformed setting.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return ApplyEnv(fs)
}

// ApplyEnv fills the flags not set on the command line from their environment variables.
func ApplyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return applyEnv(fs, func(name string) bool { return given[name] })
}

func applyEnv(fs *flag.FlagSet, given func(name string) bool) error {
	mu.Lock()
	bs := append([]binding(nil), bindings[fs]...)
	mu.Unlock()
	var problems []string
	for _, b := range bs {
		v, ok := os.LookupEnv(b.env)
		if given(b.name) || !ok {
			continue
		}
		if strings.TrimSpace(v) == "" {
			if b.hasDef {
				problems = append(problems, fmt.Sprintf("setting %s (flag -%s) is set but empty; unset it to use the default %s",
					b.env, b.name, fs.Lookup(b.name).DefValue))
			}
			continue
		}
		if err := fs.Set(b.name, v); err != nil {
			problems = append(problems, describe(b, v))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(problems, "; "))
	}
	return nil
}

func describe(b binding, v string) string {
	want := map[kind]string{
		kindInt:      "a whole number, e.g. 100",
		kindFloat:    "a number, e.g. 10 or 2.5",
		kindDuration: "a Go duration, e.g. 90s, 5m or 24h",
		kindBool:     "true or false",
	}[b.kind]
	if b.kind == kindSecret {
		return fmt.Sprintf("setting %s (flag -%s) is malformed", b.env, b.name)
	}
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	return fmt.Sprintf("setting %s=%q (flag -%s) is malformed: want %s", b.env, v, b.name, want)
}

// Token reads a bearer token from a value or a file (the file wins, and is re-read on each call so a
// rotated Secret is picked up).
func Token(value, file string) (func() (string, error), error) {
	if file != "" {
		if _, err := os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		return func() (string, error) {
			b, err := os.ReadFile(file)
			if err != nil {
				return "", err
			}
			return strings.TrimSpace(string(b)), nil
		}, nil
	}
	if value == "" {
		return nil, fmt.Errorf("no TCS token: set TCS_TOKEN or TCS_TOKEN_FILE")
	}
	return func() (string, error) { return value, nil }, nil
}

// ApplyEnvExcept fills the flags for which given is false from their environment variables: for a
// command line parsed elsewhere (the starter's, by cobra), which says itself what it was given.
func ApplyEnvExcept(fs *flag.FlagSet, given func(name string) bool) error {
	return applyEnv(fs, given)
}
