package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/internal/gobuild"
)

func pluginCommand() *cli.Command {
	return &cli.Command{
		Name:         "plugin",
		Usage:        "Build and inspect WebAssembly plugins",
		OnUsageError: onUsageError,
		Subcommands: []*cli.Command{
			pluginInspectCommand(),
			pluginBuildCommand(),
			pluginRunCommand(),
			pluginTestCommand(),
		},
	}
}

// newHost returns the plugin host the commands use: the default disk
// compilation cache, plugin logs on stderr.
func newHost(c *cli.Context) (*host.Host, error) {
	return host.New(host.Options{Logger: slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))})
}

// inspectFile loads the module in file as a step would and describes it.
func inspectFile(c *cli.Context, file, name string) (host.Info, error) {
	wasm, err := os.ReadFile(file)
	if err != nil {
		return host.Info{}, err
	}
	h, err := newHost(c)
	if err != nil {
		return host.Info{}, err
	}
	defer h.Close(c.Context)
	return h.Inspect(c.Context, wasm, host.StepConfig{Name: name})
}

// exactArgs checks that a command got n arguments, named in what.
func exactArgs(c *cli.Context, n int, what string) error {
	if c.NArg() != n {
		return usageError{err: fmt.Errorf("%s takes %s, got %d argument(s)", c.Command.Name, what, c.NArg()), helpName: c.Command.HelpName}
	}
	return nil
}

// inspectJSON is what `plugin inspect --json` prints.
type inspectJSON struct {
	Name           string   `json:"name"`
	File           string   `json:"file"`
	Size           int      `json:"size"`
	SHA256         string   `json:"sha256"`
	ABIVersion     string   `json:"abi_version"`
	Kinds          []string `json:"kinds"`
	Exports        []string `json:"exports"`
	Imports        []string `json:"imports"`
	MemoryMinPages uint32   `json:"memory_min_pages"`
	MemoryMaxPages uint32   `json:"memory_max_pages,omitempty"`
}

func pluginInspectCommand() *cli.Command {
	return &cli.Command{
		Name:         "inspect",
		Usage:        "Check a plugin against the ABI and describe it",
		ArgsUsage:    "FILE",
		OnUsageError: onUsageError,
		Description: "Loads the module as a step would (its ABI version, exports, imports and an\n" +
			"instance are checked) and prints its ABI version, step kinds, exports,\n" +
			"imports, size and sha256. A module that would not load is an error.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON object"},
		},
		Action: func(c *cli.Context) error {
			if err := exactArgs(c, 1, "one FILE"); err != nil {
				return err
			}
			file := c.Args().First()
			info, err := inspectFile(c, file, strings.TrimSuffix(filepath.Base(file), ".wasm"))
			if err != nil {
				return err
			}
			out := inspectJSON{
				Name: info.Name, File: file, Size: info.Size, SHA256: info.SHA256,
				ABIVersion: abi.VersionString(info.ABIVersion), Kinds: strings.Split(info.Kinds.String(), ","),
				Exports: info.Exports, Imports: info.Imports,
				MemoryMinPages: info.MemoryMinPages, MemoryMaxPages: info.MemoryMaxPages,
			}
			if out.Imports == nil {
				out.Imports = []string{}
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			printInspect(c.App.Writer, &out)
			return nil
		},
	}
}

func printInspect(w io.Writer, i *inspectJSON) {
	fmt.Fprintf(w, "plugin   %s\n", i.Name)
	fmt.Fprintf(w, "file     %s (%d bytes)\n", i.File, i.Size)
	fmt.Fprintf(w, "sha256   %s\n", i.SHA256)
	fmt.Fprintf(w, "abi      %s\n", i.ABIVersion)
	fmt.Fprintf(w, "kinds    %s\n", strings.Join(i.Kinds, ", "))
	mem := fmt.Sprintf("%d pages minimum", i.MemoryMinPages)
	if i.MemoryMaxPages != 0 {
		mem += fmt.Sprintf(", %d maximum", i.MemoryMaxPages)
	}
	fmt.Fprintf(w, "memory   %s\n", mem)
	fmt.Fprintf(w, "exports  %d\n", len(i.Exports))
	for _, e := range i.Exports {
		fmt.Fprintf(w, "  %s\n", e)
	}
	fmt.Fprintf(w, "imports  %d\n", len(i.Imports))
	for _, e := range i.Imports {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

func pluginBuildCommand() *cli.Command {
	return &cli.Command{
		Name:         "build",
		Usage:        "Build a Go plugin (a main package using the SDK) into a .wasm module",
		ArgsUsage:    "DIR",
		OnUsageError: onUsageError,
		Description: "Runs the go command on PATH with GOOS=wasip1 GOARCH=wasm and the flags a\n" +
			"plugin needs (" + strings.Join(gobuild.Flags, " ") + "), then checks the\n" +
			"result as `plugin inspect` does.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "the module to write (required)"},
		},
		Action: func(c *cli.Context) error {
			// The flag may also follow DIR (plugin build DIR -o FILE), which
			// the flag parser, stopping at the first argument, leaves in the
			// arguments.
			args, out := c.Args().Slice(), c.String("output")
			if len(args) == 3 && (args[1] == "-o" || args[1] == "--output") {
				args, out = args[:1], args[2]
			}
			if len(args) != 1 || out == "" {
				return usageError{err: fmt.Errorf("build takes one DIR and -o FILE"), helpName: c.Command.HelpName}
			}
			dir := args[0]
			if err := gobuild.Build(c.Context, dir, out); err != nil {
				return err
			}
			info, err := inspectFile(c, out, filepath.Base(dir))
			if err != nil {
				return fmt.Errorf("built %s, but it does not load: %w", out, err)
			}
			fmt.Fprintf(c.App.Writer, "%s: %s plugin, ABI %s, %d bytes, sha256 %s\n",
				out, info.Kinds, abi.VersionString(info.ABIVersion), info.Size, info.SHA256)
			return nil
		},
	}
}
