// Command connector is an example connector for aegis-host, in one binary:
// a source, "tail", that reads the lines of a text file as events, and a
// sink, "jsonl", that appends events to a file as JSON lines. aegis-host
// starts it as a process of its own, and the manifest says which of the
// two each of its sources and sinks uses (a source of type plugin uses
// the source, a sink the sink).
//
//	go build -o bin/connectors/example ./examples/connector
//
// README.md says how to use it and how positions and acks work.
package main

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/aegis-streaming/aegis/plugins/sdk"
)

func main() {
	// Serve hands the two to aegis-host and returns only when it is done
	// with them.
	sdk.Serve(sdk.Connector{Source: &tail{}, Sink: &jsonl{}})
}

// decode decodes a configuration (the manifest's `with`) into v: strictly,
// so that a misspelt key is an error at Configure rather than a setting
// silently left out.
func decode(config []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}
