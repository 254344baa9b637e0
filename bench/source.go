package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// sourceState names what was measured: the commit of the module at root, and whether
// tracked files differ from it. It is "unknown" outside a git checkout.
func sourceState(ctx context.Context, root string) string {
	head, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	state := "commit " + strings.TrimSpace(string(head))
	changed, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	switch {
	case err != nil:
		state += " (working tree state unknown)"
	case len(strings.TrimSpace(string(changed))) > 0:
		state += " + uncommitted changes to " + summarize(changedPaths(string(changed)), shownPaths)
	}
	return state
}

// shownPaths is how many changed paths sourceState names.
const shownPaths = 3

// changedPaths are the paths of git status --porcelain output ("XY path" lines).
func changedPaths(porcelain string) []string {
	var paths []string
	for line := range strings.Lines(porcelain) {
		if len(line) > 3 {
			paths = append(paths, strings.TrimSpace(line[3:]))
		}
	}
	return paths
}

// summarize names the first n paths and counts the rest.
func summarize(paths []string, n int) string {
	if len(paths) <= n {
		return strings.Join(paths, ", ")
	}
	return fmt.Sprintf("%s and %d more files", strings.Join(paths[:n], ", "), len(paths)-n)
}
