// Package logging builds the JSON slog loggers of the worker and the starter; it renders
// contract.LevelCritical, the level of the dead-letter line (docs/contract.md, The CRITICAL line),
// as "CRITICAL".
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"go.uber.org/fx/fxevent"

	"github.com/tis-writeback/writeback/contract"
)

// New returns a JSON-lines logger writing to w at the given minimum level.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				if l, ok := a.Value.Any().(slog.Level); ok && l >= contract.LevelCritical {
					return slog.String(slog.LevelKey, "CRITICAL")
				}
			}
			return a
		},
	}))
}

// ParseLevel reads debug, info, warn or error (any case); anything else is an error naming the value.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug", "info", "warn", "error":
		if err := l.UnmarshalText([]byte(s)); err == nil {
			return l, nil
		}
	}
	return slog.LevelInfo, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", s)
}

// FxLogger logs fx's own lifecycle events at debug (about 40 lines at every start otherwise);
// its errors stay at ERROR.
func FxLogger(log *slog.Logger) func() fxevent.Logger {
	return func() fxevent.Logger {
		l := &fxevent.SlogLogger{Logger: log}
		l.UseLogLevel(slog.LevelDebug)
		l.UseErrorLevel(slog.LevelError)
		return l
	}
}
