package plugintest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestConnectors builds the test connectors, which are executables that
// say they are plugins when run by hand.
func TestConnectors(t *testing.T) {
	for _, name := range []string{"connectors/source", "connectors/sink"} {
		p := Path(t, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o111 == 0 || strings.HasSuffix(p, ".wasm") {
			t.Errorf("%s: %s (%v) is not an executable", name, p, st.Mode())
		}
		out, err := exec.Command(p).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "This binary is a plugin") {
			t.Errorf("%s run by hand: %v\n%s", name, err, out)
		}
	}
}

// TestConnectorSources: the key of a connector covers every package of the
// module that it imports.
func TestConnectorSources(t *testing.T) {
	root := Root(t)
	for _, name := range []string{"connectors/source", "connectors/sink"} {
		sources, err := connectorSources(root, name)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./testplugins/"+name)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		for _, dir := range strings.Fields(string(out)) {
			files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
			for _, f := range files {
				if !strings.HasSuffix(f, "_test.go") && !slices.Contains(sources, f) {
					t.Errorf("%s: the key leaves out %s", name, f)
				}
			}
		}
	}
}
