package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// buildInfo describes the running binary. The vcs fields are empty when the
// binary was built without version control information (go build
// -buildvcs=false, or outside a repository).
type buildInfo struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
}

// buildVersion is the version to report: the linker-set version, or, for a
// default build, the module version recorded by the go command (set when
// installed with "go install module@version"), or "dev".
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

func readBuildInfo() buildInfo {
	info := buildInfo{
		Name:    appName,
		Version: buildVersion(),
		Go:      runtime.Version(),
		OS:      runtime.GOOS,
		Arch:    runtime.GOARCH,
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:         "version",
		Usage:        "Print the version and build information",
		OnUsageError: onUsageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the build information as a JSON object"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError{
					err:      fmt.Errorf("version takes no arguments, got %q", c.Args().First()),
					helpName: c.Command.HelpName,
				}
			}
			info := readBuildInfo()
			w := c.App.Writer
			if c.Bool("json") {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			fmt.Fprintf(w, "%s %s\n", info.Name, info.Version)
			fmt.Fprintf(w, "  go:       %s\n", info.Go)
			fmt.Fprintf(w, "  platform: %s/%s\n", info.OS, info.Arch)
			if info.Revision != "" {
				rev := info.Revision
				if info.Modified {
					rev += " (modified)"
				}
				fmt.Fprintf(w, "  revision: %s\n", rev)
			}
			if info.Time != "" {
				fmt.Fprintf(w, "  time:     %s\n", info.Time)
			}
			return nil
		},
	}
}
