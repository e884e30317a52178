package plugins

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestOutputLog(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // in the log, in order
	}{
		{"hclog line", `{"@level":"warn","@message":"disk slow","@timestamp":"2026-11-27T10:00:00.000000Z","@module":"x","b":2,"a":"one"}` + "\n",
			[]string{`level=WARN msg="disk slow" a=one b=2`}},
		{"plain line", "hello\n", []string{`level=INFO msg=hello stream=stderr`}},
		{"pieces", "hel", nil},
		{"crlf", "hello\r\n", []string{`msg=hello stream=stderr`}},
		// Lines go-plugin's own parser panics on: plain lines here.
		{"message not a string", `{"@message": 1, "@level": "info"}` + "\n", []string{`level=INFO msg="{\"@message\": 1, \"@level\": \"info\"}" stream=stderr`}},
		{"level not a string", `{"@message": "m", "@level": []}` + "\n", []string{`stream=stderr`}},
		{"unknown level", `{"@message": "m", "@level": "loud"}` + "\n", []string{`level=INFO msg="{\"@message\": \"m\", \"@level\": \"loud\"}"`}},
		{"not json", "{oops\n", []string{`msg={oops stream=stderr`}},
		{"panic", "panic: boom\n\ngoroutine 1 [running]:\n" + `{"@level":"info","@message":"after"}` + "\n",
			[]string{`level=ERROR msg="panic: boom"`, `level=ERROR msg="goroutine 1 [running]:"`, `level=ERROR msg="{\"@level\":\"info\",\"@message\":\"after\"}"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug - 4,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				}}))
			w := &outputLog{log: log, stream: "stderr", hclog: true}
			if n, err := w.Write([]byte(tc.in)); n != len(tc.in) || err != nil {
				t.Fatalf("Write: %d, %v", n, err)
			}
			got := buf.String()
			rest := got
			for _, want := range tc.want {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("log %q, want %q (in order)", got, want)
				}
				rest = rest[i+len(want):]
			}
			if tc.want == nil && got != "" {
				t.Fatalf("log %q before the end of the line", got)
			}
		})
	}
}

func TestOutputLogLongLine(t *testing.T) {
	var buf bytes.Buffer
	w := &outputLog{log: slog.New(slog.NewTextHandler(&buf, nil)), stream: "stdout"}
	w.Write(bytes.Repeat([]byte("x"), 3*maxLine))
	if n := strings.Count(buf.String(), "\n"); n != 3 {
		t.Fatalf("a line of 3 x %d bytes logged as %d records, want 3 parts", maxLine, n)
	}
}

// FuzzOutputLog: whatever a connector writes, the log takes it without a
// panic, and every complete line is logged.
func FuzzOutputLog(f *testing.F) {
	for _, s := range []string{
		`{"@level":"info","@message":"m","k":1}` + "\n",
		`{"@message": 1, "@level": "info"}` + "\n",
		"panic: x\n\tstack\n",
		"\r\n\n{}\n[]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var buf bytes.Buffer
		w := &outputLog{log: slog.New(slog.NewJSONHandler(&buf, nil)), stream: "stderr", hclog: true}
		w.Write(b)
		if bytes.Count(buf.Bytes(), []byte("\n")) > bytes.Count(b, []byte("\n"))+len(b)/maxLine {
			t.Fatalf("more records than lines")
		}
	})
}
