package telemetry

import (
	"strings"
	"testing"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
)

// env is an environment for Options.Getenv and choose: only what it holds
// is set.
type env map[string]string

func (e env) get(k string) string { return e[k] }

func TestChoose(t *testing.T) {
	t.Parallel()
	type tc struct {
		name    string
		named   string // the manifest's exporter
		env     env
		want    string
		wantErr []string // substrings of the error; nil: no error
	}
	var tests []tc

	// Every manifest exporter against every value of OTEL_<SIGNAL>_EXPORTER,
	// for both signals: the manifest wins whenever it names one.
	for _, signal := range []string{"TRACES", "METRICS"} {
		field := "telemetry." + strings.ToLower(signal) + ".exporter"
		v := "OTEL_" + signal + "_EXPORTER"
		envValues := []struct {
			value   string // "" leaves the variable unset
			want    string
			wantErr []string
		}{
			{value: "", want: None},
			{value: "none", want: None},
			{value: "console", want: Stdout},
			{value: "otlp", want: OTLPHTTP},
			{value: " OTLP ", want: OTLPHTTP},
			{value: "Console", want: Stdout},
			{value: "bogus", wantErr: []string{v, `"bogus"`, field}},
			{value: "zipkin", wantErr: []string{v, `"zipkin"`, field}},
		}
		if signal == "METRICS" {
			envValues = append(envValues, struct {
				value   string
				want    string
				wantErr []string
			}{value: "prometheus", want: "prometheus"})
		} else {
			envValues = append(envValues, struct {
				value   string
				want    string
				wantErr []string
			}{value: "prometheus", wantErr: []string{v, `"prometheus"`, field, "otlp, console or none"}})
		}
		for _, named := range []string{"", None, Stdout, OTLPGRPC, OTLPHTTP} {
			for _, ev := range envValues {
				e := env{}
				if ev.value != "" {
					e[v] = ev.value
				}
				c := tc{
					name:  signal + "/manifest=" + orDefault(named, "unset") + "/" + v + "=" + orDefault(ev.value, "unset"),
					named: named,
					env:   e,
				}
				if named != "" {
					c.want = named
				} else {
					c.want, c.wantErr = ev.want, ev.wantErr
				}
				tests = append(tests, c)
			}
		}
	}

	tests = append(tests, []tc{
		// An OTLP endpoint alone turns the otlp exporter on.
		{name: "TRACES/generic endpoint alone", env: env{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: OTLPHTTP},
		{name: "METRICS/generic endpoint alone", env: env{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: OTLPHTTP},
		{name: "TRACES/traces endpoint alone", env: env{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, want: OTLPHTTP},
		{name: "METRICS/metrics endpoint alone", env: env{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318/v1/metrics"}, want: OTLPHTTP},
		{name: "TRACES/metrics endpoint does not enable traces", env: env{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318"}, want: None},
		{name: "METRICS/traces endpoint does not enable metrics", env: env{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318"}, want: None},
		{name: "TRACES/endpoint with grpc protocol", env: env{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: OTLPGRPC},
		{name: "TRACES/exporter none wins over an endpoint", env: env{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: None},
		{name: "METRICS/exporter console wins over an endpoint", env: env{"OTEL_METRICS_EXPORTER": "console", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: Stdout},
		{name: "METRICS/exporter prometheus wins over an endpoint", env: env{"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: "prometheus"},
		{name: "TRACES/manifest wins over an endpoint", named: Stdout, env: env{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: Stdout},

		// The protocol: grpc, http/protobuf or unset; the signal's own
		// variable over the generic one.
		{name: "TRACES/protocol unset", env: env{"OTEL_TRACES_EXPORTER": "otlp"}, want: OTLPHTTP},
		{name: "TRACES/generic protocol grpc", env: env{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: OTLPGRPC},
		{name: "METRICS/generic protocol grpc", env: env{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: OTLPGRPC},
		{name: "TRACES/generic protocol http/protobuf", env: env{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, want: OTLPHTTP},
		{name: "TRACES/generic protocol http/json", env: env{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: []string{"OTEL_EXPORTER_OTLP_PROTOCOL", `"http/json"`, "telemetry.traces.exporter"}},
		{name: "METRICS/generic protocol http/json", env: env{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: []string{"OTEL_EXPORTER_OTLP_PROTOCOL", `"http/json"`, "telemetry.metrics.exporter"}},
		{name: "TRACES/traces protocol grpc", env: env{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, want: OTLPGRPC},
		{name: "METRICS/metrics protocol grpc", env: env{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}, want: OTLPGRPC},
		{name: "TRACES/traces protocol grpc over generic http/protobuf", env: env{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, want: OTLPGRPC},
		{name: "TRACES/traces protocol http/protobuf over generic grpc", env: env{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: OTLPHTTP},
		{name: "METRICS/metrics protocol http/protobuf over generic grpc", env: env{"OTEL_METRICS_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: OTLPHTTP},
		{name: "TRACES/traces protocol grpc over generic http/json", env: env{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, want: OTLPGRPC},
		{name: "TRACES/traces protocol http/json over generic grpc", env: env{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			wantErr: []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", `"http/json"`, "telemetry.traces.exporter"}},
		{name: "METRICS/metrics protocol http/json", env: env{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"},
			wantErr: []string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", `"http/json"`, "telemetry.metrics.exporter"}},
		{name: "TRACES/metrics protocol does not apply to traces", env: env{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}, want: OTLPHTTP},
		{name: "METRICS/traces protocol does not apply to metrics", env: env{"OTEL_METRICS_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, want: OTLPHTTP},
		{name: "TRACES/protocol ignored when not otlp", env: env{"OTEL_TRACES_EXPORTER": "console",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, want: Stdout},
		{name: "TRACES/protocol ignored when the manifest names the exporter", named: OTLPHTTP, env: env{
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, want: OTLPHTTP},
		{name: "TRACES/signal endpoint with generic grpc protocol", env: env{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: OTLPGRPC},
		{name: "TRACES/signal endpoint with bad protocol", env: env{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "telemetry.traces.exporter"}},
	}...)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			signal, _, _ := strings.Cut(tt.name, "/")
			field := "telemetry." + strings.ToLower(signal) + ".exporter"
			got, err := choose(field, tt.named, signal, tt.env.get)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("choose = %q, want an error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("choose: %v", err)
			}
			if got != tt.want {
				t.Errorf("choose = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSignalURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, endpoint, path, want string
	}{
		{"base URL", "http://collector:4318", "/v1/traces", "http://collector:4318/v1/traces"},
		{"base URL, metrics", "http://collector:4318", "/v1/metrics", "http://collector:4318/v1/metrics"},
		{"trailing slash", "http://collector:4318/", "/v1/traces", "http://collector:4318/v1/traces"},
		{"trailing slashes", "https://collector:4318//", "/v1/traces", "https://collector:4318/v1/traces"},
		{"no port", "https://collector.example", "/v1/metrics", "https://collector.example/v1/metrics"},
		{"IPv6 host", "http://[::1]:4318", "/v1/traces", "http://[::1]:4318/v1/traces"},
		{"signal path kept", "http://collector:4318/v1/traces", "/v1/traces", "http://collector:4318/v1/traces"},
		{"other path kept", "https://collector:4318/custom/otlp", "/v1/traces", "https://collector:4318/custom/otlp"},
		{"path with trailing slash kept", "http://collector:4318/prefix/", "/v1/metrics", "http://collector:4318/prefix/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := signalURL(tt.endpoint, tt.path); got != tt.want {
				t.Errorf("signalURL(%q, %q) = %q, want %q", tt.endpoint, tt.path, got, tt.want)
			}
		})
	}
}

func nilTelemetry() *manifest.Telemetry   { return nil }
func emptyTelemetry() *manifest.Telemetry { return &manifest.Telemetry{} }

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		telemetry func() *manifest.Telemetry
		env       env
		wantErr   []string // substrings; nil: no error
		notInErr  []string
	}{
		{name: "nothing set", telemetry: nilTelemetry},
		{name: "valid variables", telemetry: nilTelemetry, env: env{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}},
		{name: "both signals wrong", telemetry: nilTelemetry,
			env:     env{"OTEL_TRACES_EXPORTER": "bogus", "OTEL_METRICS_EXPORTER": "wrong"},
			wantErr: []string{"OTEL_TRACES_EXPORTER", "telemetry.traces.exporter", "OTEL_METRICS_EXPORTER", "telemetry.metrics.exporter"}},
		{name: "both protocols wrong", telemetry: nilTelemetry,
			env:     env{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "telemetry.traces.exporter", "telemetry.metrics.exporter"}},
		{name: "traces only wrong", telemetry: nilTelemetry,
			env:      env{"OTEL_TRACES_EXPORTER": "bogus", "OTEL_METRICS_EXPORTER": "otlp"},
			wantErr:  []string{"OTEL_TRACES_EXPORTER", "telemetry.traces.exporter"},
			notInErr: []string{"telemetry.metrics.exporter"}},
		{name: "metrics only wrong", telemetry: emptyTelemetry,
			env:      env{"OTEL_METRICS_EXPORTER": "bogus"},
			wantErr:  []string{"OTEL_METRICS_EXPORTER", "telemetry.metrics.exporter"},
			notInErr: []string{"telemetry.traces.exporter"}},
		{name: "manifest names both exporters", telemetry: func() *manifest.Telemetry {
			return &manifest.Telemetry{Traces: &manifest.Traces{Exporter: Stdout}, Metrics: &manifest.Metrics{Exporter: None}}
		}, env: env{"OTEL_TRACES_EXPORTER": "bogus", "OTEL_METRICS_EXPORTER": "wrong"}},
		{name: "manifest names the traces exporter only", telemetry: func() *manifest.Telemetry {
			return &manifest.Telemetry{Traces: &manifest.Traces{Exporter: OTLPGRPC}}
		}, env: env{"OTEL_TRACES_EXPORTER": "bogus", "OTEL_METRICS_EXPORTER": "wrong"},
			wantErr:  []string{"OTEL_METRICS_EXPORTER", "telemetry.metrics.exporter"},
			notInErr: []string{"OTEL_TRACES_EXPORTER"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Check(tt.telemetry(), tt.env.get)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Check = nil, want an error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			for _, s := range tt.notInErr {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q mentions %q", err, s)
				}
			}
		})
	}
}
