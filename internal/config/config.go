// Package config gives flags their environment fallbacks: a flag on the command line wins, then
// the environment variable, then the default. Usage texts name the variable.
package config

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Set defines flags on a FlagSet with env fallbacks.
type Set struct{ FS *flag.FlagSet }

func usage(u, env string) string { return fmt.Sprintf("%s (env %s)", u, env) }

// String defines a string flag.
func (s Set) String(p *string, name, env, def, u string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	s.FS.StringVar(p, name, def, usage(u, env))
}

// Int defines an int flag.
func (s Set) Int(p *int, name, env string, def int, u string) {
	if n, err := strconv.Atoi(os.Getenv(env)); err == nil {
		def = n
	}
	s.FS.IntVar(p, name, def, usage(u, env))
}

// Float defines a float flag.
func (s Set) Float(p *float64, name, env string, def float64, u string) {
	if n, err := strconv.ParseFloat(os.Getenv(env), 64); err == nil {
		def = n
	}
	s.FS.Float64Var(p, name, def, usage(u, env))
}

// Duration defines a duration flag.
func (s Set) Duration(p *time.Duration, name, env string, def time.Duration, u string) {
	if d, err := time.ParseDuration(os.Getenv(env)); err == nil {
		def = d
	}
	s.FS.DurationVar(p, name, def, usage(u, env))
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
