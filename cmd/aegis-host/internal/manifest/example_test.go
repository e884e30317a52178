package manifest_test

import (
	"fmt"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
)

func ExampleParse() {
	_, err := manifest.Parse("pipeline.yaml", []byte(`apiVersion: aegis/v1
sources:
  orders: {type: generator, rate: 1000}
sinks:
  console: {type: stdout, format: data}
pipelines:
  - name: paid
    from: order
    steps:
      - name: only-paid
        filter: {type: [order.paid]}
        workers: 0
    to: [consle]
`), ".", nil)
	fmt.Println(err)
	// Output:
	// pipeline.yaml:8:11: pipelines[0].from: no source or channel named "order" (did you mean "orders"?)
	// pipeline.yaml:12:18: pipelines[0].steps[0].workers: must be between 1 and 256, got 0
	// pipeline.yaml:13:10: pipelines[0].to[0]: no sink or channel named "consle" (did you mean "console"?)
}

func ExampleManifest_Resolve() {
	m, err := manifest.Parse("pipeline.yaml", []byte(`apiVersion: aegis/v1
sources: {gen: {type: generator, count: 10}}
sinks: {out: {type: stdout}}
pipelines: [{name: p, from: gen, to: [out]}]
`), "/srv/aegis", nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Resolve("plugins/enrich.wasm"))
	fmt.Println(m.Pipelines[0].Batch.MaxEvents, m.Pipelines[0].Batch.MaxWait)
	// Output:
	// /srv/aegis/plugins/enrich.wasm
	// 256 50ms
}

func ExampleManifest_DataPath() {
	m, err := manifest.Parse("pipeline.yaml", []byte(`apiVersion: aegis/v1
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines: [{name: p, from: gen, to: [out]}]
`), "/srv/aegis", nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.DataDir)
	fmt.Println(m.DataPath())
	fmt.Println(m.DataPath("connectors", "cdc"))
	fmt.Println(m.DataPath("jetstream")) // the embedded NATS server's store
	// Output:
	// .aegis
	// /srv/aegis/.aegis
	// /srv/aegis/.aegis/connectors/cdc
	// /srv/aegis/.aegis/jetstream
}
