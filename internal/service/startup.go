package service

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/billing/billing/internal/config"
)

// LogStart logs, once at start, which build of process runs and with what configuration
// (its secrets masked: config.Config.LogValue).
func LogStart(logger *slog.Logger, process string, cfg config.Config) {
	logger.LogAttrs(context.Background(), slog.LevelInfo, "starting",
		slog.String("process", process), slog.Any("build", Build()), slog.Any("config", cfg))
}

// Build is the version of the running binary, from its build information: the module's
// version, the VCS revision and time (with "modified" when the tree had changes), and
// the Go version.
func Build() slog.Value {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return slog.GroupValue(slog.String("version", "unknown"), slog.String("go", runtime.Version()))
	}
	attrs := []slog.Attr{slog.String("version", info.Main.Version), slog.String("go", info.GoVersion)}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			attrs = append(attrs, slog.String("revision", s.Value))
		case "vcs.time":
			attrs = append(attrs, slog.String("revision_time", s.Value))
		case "vcs.modified":
			attrs = append(attrs, slog.Bool("modified", s.Value == "true"))
		}
	}
	return slog.GroupValue(attrs...)
}
