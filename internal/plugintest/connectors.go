package plugintest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// connectorFlags are the flags of a connector's go build: without paths of
// the build machine.
var connectorFlags = []string{"-trimpath"}

func init() {
	// "connectors/source": testplugins/connectors/source, a connector
	// (hashicorp/go-plugin, with plugins/sdk), built as a native
	// executable for the machine the tests run on.
	builders["connectors"] = builder{sources: connectorSources, tool: connectorTool, build: connectorBuild, native: true}
}

// exeExt is the extension of an executable on this machine.
var exeExt = map[bool]string{true: ".exe", false: ""}[runtime.GOOS == "windows"]

// connectorSources: every package a connector may import from the module
// (the SDK and the rest of plugins, the engine and the ABI under it, the
// internal packages those use, the orders workload, what the test
// connectors share), its own directory,
// and go.mod and go.sum, which pick the versions of the rest.
func connectorSources(root, name string) ([]string, error) {
	var sources []string
	for _, d := range []string{"abi", "engine", "plugins", filepath.Join("internal", "orders"),
		filepath.Join("internal", "jsonstr"), filepath.Join("internal", "atomicfile"),
		filepath.Join("testplugins", "connectors", "internal"), filepath.Join("testplugins", name)} {
		files, err := sourceFiles(filepath.Join(root, d), ".go")
		if err != nil {
			return nil, err
		}
		sources = append(sources, files...)
	}
	return append(sources, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum")), nil
}

func connectorTool(string) (string, error) {
	h := fmt.Sprintf("%s %s/%s\n%q\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, connectorFlags)
	for _, env := range []string{"GOFLAGS", "GOEXPERIMENT", "GOTOOLCHAIN", "GOAMD64", "GOARM64"} {
		h += fmt.Sprintf("%s=%s\n", env, os.Getenv(env))
	}
	return h, nil
}

// connectorBuild builds the connector from the repository's root, for the
// machine the tests run on, without cgo, as an executable.
func connectorBuild(root, name, out string) error {
	args := append([]string{"build"}, connectorFlags...)
	args = append(args, "-o", out, "./"+filepath.ToSlash(filepath.Join("testplugins", name)))
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0")
	var msg bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build of testplugins/%s: %w\n%s", name, err, bytes.TrimSpace(msg.Bytes()))
	}
	return os.Chmod(out, 0o755)
}
