package plugintest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// AssemblyScript test plugins: "as/orders_map" is testplugins/as/orders_map.ts,
// built with the AssemblyScript SDK (sdk/assemblyscript) and the compiler
// its package-lock.json pins, installed by `npm ci` in that directory.

// ascFlags are the SDK's build flags (sdk/assemblyscript/README.md): the
// incremental runtime, which collects garbage as it allocates, so that an
// instance called many times never leaks; top-level code (the plugin's
// registration) run by _initialize, which the host calls first; and the
// SDK's handlers instead of AssemblyScript's env.abort, env.trace and
// env.seed imports, which the host refuses.
var ascFlags = []string{
	"--runtime", "incremental",
	"-O3",
	"--exportStart", "_initialize",
	"--use", "abort=aegisAbort",
	"--use", "trace=aegisTrace",
	"--use", "seed=aegisSeed",
}

// asSDK is the SDK's directory in the repository.
const asSDK = "sdk/assemblyscript"

func init() {
	builders["as"] = builder{sources: asSources, tool: asTool, build: asBuild}
}

// asPlugin returns the path of a plugin's source, relative to the root.
func asPlugin(name string) string {
	return filepath.Join("testplugins", filepath.FromSlash(name)+".ts")
}

// ascPath returns the pinned compiler, or an error saying how to install it.
func ascPath(root string) (string, error) {
	asc := filepath.Join(root, filepath.FromSlash(asSDK), "node_modules", ".bin", "asc")
	if _, err := os.Stat(asc); err != nil {
		return "", fmt.Errorf("the AssemblyScript compiler is not installed: run npm ci in %s (go tool task deps does): %w", asSDK, err)
	}
	return asc, nil
}

// asSources: the plugin, every .ts file of the SDK, and the package files
// that pin the compiler.
func asSources(root, name string) ([]string, error) {
	sdk := filepath.Join(root, filepath.FromSlash(asSDK))
	ts, err := sourceFiles(filepath.Join(sdk, "assembly"), ".ts")
	if err != nil {
		return nil, err
	}
	sources := append([]string{filepath.Join(root, asPlugin(name))}, ts...)
	return append(sources, filepath.Join(sdk, "package.json"), filepath.Join(sdk, "package-lock.json")), nil
}

// asTool names the compiler's version, Node's, and the flags.
func asTool(root string) (string, error) {
	asc, err := ascPath(root)
	if err != nil {
		return "", err
	}
	v, err := exec.Command(asc, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w\n%s", asc, err, v)
	}
	node, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("node (the AssemblyScript compiler runs on Node.js): %w", err)
	}
	return fmt.Sprintf("asc %s\nnode %s\n%q\n", strings.TrimSpace(string(v)), strings.TrimSpace(string(node)), ascFlags), nil
}

// asBuild compiles the plugin from the repository root, so that the names
// the module carries (in abort messages, say) are paths in the repository.
func asBuild(root, name, out string) error {
	asc, err := ascPath(root)
	if err != nil {
		return err
	}
	args := append([]string{filepath.ToSlash(asPlugin(name)), "-o", out}, ascFlags...)
	cmd := exec.Command(asc, args...)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("asc: %w\n%s", err, msg)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		return fmt.Errorf("asc wrote no module for %s", name)
	}
	return nil
}
