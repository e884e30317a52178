package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// The in-process tests do not use t.Parallel: urfave/cli v2 fills in its
// shared help command on first use, which the race detector reports when two
// runs do it at once.

// runCLI runs the CLI in-process with args after the program name.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{appName}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunVersion(t *testing.T) {
	code, stdout, stderr := runCLI(t, "version")
	if code != exitOK {
		t.Fatalf("exit code = %d, want %d; stderr:\n%s", code, exitOK, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want empty", stderr)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if want := appName + " " + buildVersion(); lines[0] != want {
		t.Errorf("first line = %q, want %q", lines[0], want)
	}
	for _, want := range []string{
		"go:       " + runtime.Version(),
		"platform: " + runtime.GOOS + "/" + runtime.GOARCH,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

func TestRunVersionJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, "version", "--json")
	if code != exitOK {
		t.Fatalf("exit code = %d, want %d; stderr:\n%s", code, exitOK, stderr)
	}
	var got buildInfo
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stdout is not a build info JSON object: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Errorf("stdout has more than one JSON value:\n%s", stdout)
	}
	if want := readBuildInfo(); got != want {
		t.Errorf("version --json = %+v, want %+v", got, want)
	}
	if got.Name != appName || got.Version == "" || got.Go != runtime.Version() ||
		got.OS != runtime.GOOS || got.Arch != runtime.GOARCH {
		t.Errorf("version --json has wrong basics: %+v", got)
	}
}

func TestRunHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // substrings of stdout
	}{
		{
			name: "long flag",
			args: []string{"--help"},
			want: []string{"stream processing host", "COMMANDS:", "version", "help"},
		},
		{
			name: "short flag",
			args: []string{"-h"},
			want: []string{"COMMANDS:", "version"},
		},
		{
			name: "help command",
			args: []string{"help"},
			want: []string{"COMMANDS:", "version"},
		},
		{
			name: "no arguments",
			args: nil,
			want: []string{"COMMANDS:", "version"},
		},
		{
			name: "help for a command",
			args: []string{"help", "version"},
			want: []string{"aegis-host version", "--json"},
		},
		{
			name: "cdc status in the commands",
			args: []string{"--help"},
			want: []string{"cdc", "Inspect change data capture sources"},
		},
		{
			name: "help for cdc status",
			args: []string{"cdc", "status", "--help"},
			want: []string{"aegis-host cdc status", "--file", "--json", "lag"},
		},
		{
			name: "command help flag",
			args: []string{"version", "--help"},
			want: []string{"aegis-host version", "--json"},
		},
		{
			name: "version flag",
			args: []string{"--version"},
			want: []string{appName + " version " + buildVersion()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != exitOK {
				t.Fatalf("exit code = %d, want %d; stderr:\n%s", code, exitOK, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr = %q, want empty", stderr)
			}
			for _, want := range tt.want {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
}

func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // substrings of stderr
	}{
		{
			name: "unknown command",
			args: []string{"frobnicate"},
			want: []string{`unknown command "frobnicate"`, "Run 'aegis-host --help'"},
		},
		{
			name: "help for unknown command",
			args: []string{"help", "frobnicate"},
			want: []string{`unknown command "frobnicate"`},
		},
		{
			name: "unknown global flag",
			args: []string{"--frobnicate"},
			want: []string{"flag provided but not defined", "frobnicate", "Run 'aegis-host --help'"},
		},
		{
			name: "unknown command flag",
			args: []string{"version", "--frobnicate"},
			want: []string{"flag provided but not defined", "frobnicate", "Run 'aegis-host version --help'"},
		},
		{
			name: "bad flag value",
			args: []string{"version", "--json=maybe"},
			want: []string{"json"},
		},
		{
			name: "extra argument",
			args: []string{"version", "extra"},
			want: []string{`version takes no arguments, got "extra"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want empty", stdout)
			}
			if !strings.HasPrefix(stderr, appName+": ") {
				t.Errorf("stderr does not start with %q:\n%s", appName+": ", stderr)
			}
			for _, want := range tt.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

func TestReport(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantCode   int
		wantStderr string
	}{
		{name: "success", err: nil, wantCode: exitOK, wantStderr: ""},
		{
			name:       "command error",
			err:        errors.New("pipeline[orders] failed"),
			wantCode:   exitError,
			wantStderr: "aegis-host: pipeline[orders] failed\n",
		},
		{
			name:       "wrapped usage error",
			err:        fmt.Errorf("loading: %w", usageError{err: errors.New("bad"), helpName: "aegis-host run"}),
			wantCode:   exitUsage,
			wantStderr: "aegis-host: loading: bad\nRun 'aegis-host run --help' for usage.\n",
		},
		{
			name:       "exit coder",
			err:        cli.Exit("unavailable", 69),
			wantCode:   69,
			wantStderr: "aegis-host: unavailable\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := report(tt.err, &stderr); code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			if got := stderr.String(); got != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", got, tt.wantStderr)
			}
		})
	}
}

// TestBinary builds the real binary and runs it as a subprocess, through
// main and os.Exit, the way users and scripts do.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	const testVersion = "v0.0.0-e2e"
	bin := filepath.Join(t.TempDir(), appName)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	build := exec.CommandContext(t.Context(), "go", "build",
		"-ldflags", "-X main.version="+testVersion, "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // prefix
		wantStderr string // substring
	}{
		{
			name:       "version",
			args:       []string{"version"},
			wantCode:   exitOK,
			wantStdout: appName + " " + testVersion + "\n  go:       ",
		},
		{
			name:       "version json",
			args:       []string{"version", "--json"},
			wantCode:   exitOK,
			wantStdout: "{",
		},
		{
			name:       "unknown command",
			args:       []string{"frobnicate"},
			wantCode:   exitUsage,
			wantStderr: `unknown command "frobnicate"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(t.Context(), bin, tt.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exitErr *exec.ExitError
			if err != nil && !errors.As(err, &exitErr) {
				t.Fatalf("running %s: %v", bin, err)
			}
			if code := cmd.ProcessState.ExitCode(); code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout does not start with %q:\n%s", tt.wantStdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr.String())
			}
			if tt.name == "version json" {
				var info buildInfo
				if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
					t.Fatalf("version --json output is not JSON: %v\n%s", err, stdout.String())
				}
				if info.Version != testVersion || info.Name != appName {
					t.Errorf("version --json = %+v, want name %q version %q", info, appName, testVersion)
				}
			}
		})
	}
}
